// Entry point of /embed/PLAYBACK_ID: the player alone, for iframes.
import { Player, readConfig } from "/static/player.js";

new Player(document.getElementById("player"), readConfig()).start();
