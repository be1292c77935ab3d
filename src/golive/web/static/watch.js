// Entry point of /watch/PLAYBACK_ID: the player, the chat panel, viewer count, embed snippet.
import { Player, readConfig } from "/static/player.js";
import { ChatPanel } from "/static/chat.js";
import { ChatReplay } from "/static/chat-replay.js";

const config = readConfig();
const player = new Player(document.getElementById("player"), config);
const title = document.getElementById("title");
const viewers = document.getElementById("viewers");
player.onStatus((status) => {
  if (status.title && title.textContent !== status.title) {
    title.textContent = status.title;
    document.title = `${status.title} · golive`;
  }
  viewers.hidden = !status.live;
  viewers.textContent = `${Math.max(1, status.viewers)} watching`; // this viewer counts
});
player.start();

const $ = (id) => document.getElementById(id);
const chatElements = {
  log: $("chat-log"),
  error: $("chat-error"),
  state: $("chat-state"),
  viewers: $("chat-viewers"),
  joinForm: $("chat-join"),
  nameInput: $("chat-name"),
  sendForm: $("chat-send"),
  textInput: $("chat-text"),
};
if (config.chatReplay && config.chatReplayUrl) {
  // The chat as it was when the frame on screen was live (a recording's, or a live
  // stream's with ?chat=replay), instead of the chat right now.
  const chat = new ChatPanel(chatElements, config.chatUrl);
  new ChatReplay(chat, config.chatReplayUrl, () => player.playingDate(), { live: config.live }).start();
} else if (config.chatUrl) {
  new ChatPanel(chatElements, config.chatUrl).connect();
} else {
  $("chat").hidden = true;
}

const snippet = $("embed-snippet");
const embedUrl = new URL(`/embed/${encodeURIComponent(config.playbackId)}`, location.origin);
const token = new URL(config.manifestUrl, location.origin).searchParams.get("token");
if (token) embedUrl.searchParams.set("token", token);
snippet.value = `<iframe src="${embedUrl}" width="854" height="480" allow="autoplay; fullscreen; picture-in-picture" style="border:0"></iframe>`;
$("embed-copy").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  try {
    await navigator.clipboard.writeText(snippet.value);
  } catch {
    snippet.select();
    document.execCommand("copy");
  }
  button.textContent = "Copied";
  setTimeout(() => {
    button.textContent = "Copy";
  }, 1500);
});
