// The golive player: hls.js in low-latency mode (native HLS where the browser has it and
// no MSE), LIVE badge, delay readout, quality menu, muted autoplay with an unmute button,
// an offline state that starts by itself when the stream goes live, recovery when the
// publisher drops and returns, QoE events for every view, and (where the node plays WHEP)
// a "Real-time" toggle that switches to WebRTC and falls back to LL-HLS on any failure.
// A stream with a DVR window gets a seek bar over the window (hls.js's seekable range) and
// a "Go live" button back to the live edge (hls.js's liveSyncPosition). Where the pictures
// carry closed captions (CEA-608, declared by the multivariant playlist), a "CC" button
// shows them (with several channels, CC1 then CC3 and so on, then off); the viewer's
// choice is remembered. A recording plays with the same bar: a
// seek bar over its duration and its position. Play/pause is a button and, wherever focus
// is in the player, a key: k or Space (play/pause), m (mute), f (full screen), c (captions),
// left and right (5 s back or on, in a recording or a DVR window), up and down (volume,
// also a slider beside the mute button; the level is remembered).
import { QoeReporter } from "/static/qoe.js";
import { RealtimeError, RealtimeSession } from "/static/realtime.js";
import { PREVIEW_WIDTH, SeekPreview } from "/static/seek-preview.js";

const OFFLINE_POLL_MS = 2000;
const LIVE_POLL_MS = 10_000;
const WATCHDOG_MS = 1000;
const STUCK_AFTER_MS = 8000;
const LATENCY_SAMPLE_MS = 5000;
const MAX_RETRY_MS = 15_000;
const NOTICE_MS = 8000;
// Further behind the live edge than this (beyond the usual hold-back), the "Go live" button shows.
const BEHIND_LIVE_S = 6;
const SEEK_STEP_S = 5; // what an arrow key moves, in a recording or a DVR window

const CAPTIONS_KEY = "golive.captions";
const VOLUME_KEY = "golive.volume";
const VOLUME_STEP = 0.1; // what an up or down arrow changes
const CAPTIONS_RELOAD_MS = 60_000;

// hls.js 1.7 decodes CEA-608 captions from the pictures but showed none of golive's, for
// two reasons its timeline controller (swapped here for one that handles both) has:
// - it resets its caption decoder whenever a fragment loads that does not follow the last
//   one, and takes the next LL-HLS part of the same segment for such a jump, so every
//   caption spanning parts (all of them, at 0.2 s a part) was lost;
// - it holds each cue until a "video" buffer is appended, and golive's renditions carry
//   picture and sound together in one ("audiovideo") buffer, so the cues were never added.
function captionsTimeline(Hls) {
  const Base = Hls.DefaultConfig && Hls.DefaultConfig.timelineController;
  if (typeof Base !== "function") return undefined;
  return class GoliveTimeline extends Base {
    onFragLoading(event, data) {
      const { frag, part } = data;
      if (part && frag.type === "main" && frag.sn === this.lastSn && frag.cc === this.lastCc
          && part.index === this.lastPartIndex + 1) {
        this.lastPartIndex = part.index;
        return;
      }
      super.onFragLoading(event, data);
    }

    onBufferAppended(event, data) {
      const muxed = data.type === "audiovideo" && data.timeRanges && data.timeRanges.audiovideo;
      if (!muxed) {
        super.onBufferAppended(event, data);
        return;
      }
      super.onBufferAppended(event, { ...data, type: "video", timeRanges: { ...data.timeRanges, video: muxed } });
    }
  };
}

// The viewer's last volume (the page starts muted all the same: browsers allow no
// autoplay with sound).
function storedVolume() {
  try {
    const stored = Number(window.localStorage.getItem(VOLUME_KEY));
    return stored > 0 && stored <= 1 ? stored : 1;
  } catch {
    return 1;
  }
}

// 75.4 s as "1:15", an hour and more as "1:02:03".
function clock(seconds) {
  const whole = Math.max(0, Math.floor(seconds || 0));
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = String(whole % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

function storedCaptions() {
  try {
    return window.localStorage.getItem(CAPTIONS_KEY) === "on";
  } catch {
    return false; // storage refused (privacy mode, a sandboxed embed)
  }
}

const MESSAGES = {
  loading: "Loading…",
  offline: "The stream is offline — it will start here automatically",
  reconnecting: "Reconnecting to the stream…",
  buffering: "Buffering…",
  realtime: "Connecting in real time…",
};

function hlsErrorText(data) {
  const code = data.response && data.response.code;
  switch (data.details) {
    case "manifestLoadError":
    case "levelLoadError":
      if (code === 403 || code === 401) return "You are not allowed to watch this stream (the playback token was refused).";
      if (code === 404) return "The stream is not live right now.";
      return "The stream could not be reached (network error).";
    case "manifestLoadTimeOut":
    case "levelLoadTimeOut":
    case "fragLoadTimeOut":
      return "The stream is not answering (timeout).";
    case "fragLoadError":
      return "Video data could not be loaded (network error).";
    case "manifestIncompatibleCodecsError":
      return "This browser cannot decode this stream's video format.";
    case "bufferAppendError":
    case "bufferAddCodecError":
      return "This browser failed to decode the video.";
    default:
      return `Playback failed (${data.details || data.type}).`;
  }
}

export class Player {
  constructor(root, config) {
    this.root = root;
    this.config = config;
    this.video = root.querySelector("video");
    this.overlay = root.querySelector(".player-overlay");
    this.message = root.querySelector(".player-message");
    this.liveBadge = root.querySelector(".badge-live");
    this.offlineBadge = root.querySelector(".badge-offline");
    this.delayEl = root.querySelector(".player-delay");
    this.qualityLabel = root.querySelector(".player-quality");
    this.quality = root.querySelector(".player-quality select");
    this.unmute = root.querySelector(".player-unmute");
    this.muteButton = root.querySelector(".player-mute");
    this.volume = root.querySelector(".player-volume");
    this.video.volume = storedVolume();
    this.fullscreen = root.querySelector(".player-fullscreen");
    this.playButton = root.querySelector(".player-play");
    this.realtimeButton = root.querySelector(".player-realtime");
    this.captionsButton = root.querySelector(".player-captions");
    this.captionsOn = storedCaptions();
    this.captionsIndex = 0; // which of the captions tracks (in channel order) shows
    this.captionsLoaded = false; // the loaded playlists offer captions
    this.captionsReloadAt = -Infinity; // when `captionsBegan` last loaded them again
    this.notice = root.querySelector(".player-notice");
    this.seekBar = root.querySelector(".player-seek");
    this.goLive = root.querySelector(".player-golive");
    this.dvr = !config.vod && Number(config.dvr) > 0 && Boolean(this.seekBar && this.goLive);
    this.seeking = false; // the viewer is dragging the seek bar
    this.noticeTimer = 0;
    this.rt = null; // the RealtimeSession while playing over WHEP
    this.realtimeAvailable = Boolean(config.realtime && window.RTCPeerConnection && this.realtimeButton);
    this.audioOnly = false; // the playing broadcast is sound alone (see buildQualityMenu)
    this.qoe = new QoeReporter(config.qoeUrl);
    this.listeners = new Set();
    this.hls = null;
    this.native = false;
    this.state = "";
    this.retries = 0;
    this.retryTimer = 0;
    this.pollTimer = 0;
    this.attachedAt = 0;
    this.firstFrame = false;
    this.started = false;
    this.stallStart = 0;
    this.viewerSeeking = false; // a seek of the viewer's is loading (no stall meanwhile)
    this.lastProgress = { time: -1, at: 0 };
    this.lastLatencySample = 0;
    this.currentLevel = -1;
    this.errorReported = new Map();
    this.qoe.pendingStall = () => (this.stallStart ? { ms: Math.round(performance.now() - this.stallStart) } : null);
    this.pauseStart = 0; // when the viewer paused the playing picture (QoE: no watch time)
    // The viewer put the picture behind live (a pause, a seek back): its distance from live
    // is their doing, not the stream's latency, until they are back at live.
    this.chosenDelay = false;
    this.qoe.pendingPause = () => this.pausedFor();
    this.vod = Boolean(config.vod); // a recorded asset: seekable, no live edge, no status
    if (this.vod) {
      this.root.dataset.mode = "vod";
      if (this.seekBar) this.seekBar.setAttribute("aria-label", "Seek in the recording");
    }
    this.bindControls();
    this.bindVideo();
    this.updateMute();
  }

  // Public ------------------------------------------------------------------------------

  start() {
    if (this.vod) {
      this.attach();
      return;
    }
    if (this.config.live) this.attach();
    else this.goOffline();
    setInterval(() => this.watchdog(), WATCHDOG_MS);
    if (this.state === "offline") this.scheduleStatusPoll();
    else this.pollStatus(); // title and viewer count right away
  }

  onStatus(listener) {
    this.listeners.add(listener);
  }

  // States ------------------------------------------------------------------------------

  setState(state, text) {
    this.state = state;
    this.root.dataset.state = state;
    const show = state !== "playing";
    this.overlay.hidden = !show;
    this.overlay.classList.toggle("is-error", state === "error");
    this.overlay.classList.toggle("is-busy", ["loading", "reconnecting", "buffering"].includes(state));
    this.message.textContent = text || MESSAGES[state] || "";
    const live = !this.vod && ["playing", "buffering"].includes(state);
    this.liveBadge.hidden = !live;
    if (this.playButton) this.playButton.hidden = !this.vod && !live && state !== "paused";
    this.offlineBadge.hidden = live || this.vod;
    if (this.realtimeButton) this.realtimeButton.hidden = !this.realtimeAvailable || this.audioOnly || !(live || this.rt);
    if (!live && !this.vod) {
      this.delayEl.textContent = "";
      delete this.root.dataset.delay;
    }
    this.updateSeekBar();
  }

  goOffline(text) {
    this.teardown();
    this.setState("offline", text);
    this.scheduleStatusPoll(OFFLINE_POLL_MS);
  }

  fail(text, retry = true) {
    this.teardown();
    this.setState("error", retry ? `${text} Retrying…` : text);
    if (retry) this.retryLater();
  }

  retryLater() {
    clearTimeout(this.retryTimer);
    const delay = Math.min(MAX_RETRY_MS, 1000 * 2 ** this.retries) * (0.75 + Math.random() * 0.5);
    this.retries += 1;
    this.retryTimer = setTimeout(() => this.checkAndAttach(), delay);
  }

  // Status polling (the cheap, cached /watch/PID/status) --------------------------------

  scheduleStatusPoll(ms) {
    clearTimeout(this.pollTimer);
    const base = ms ?? (this.state === "offline" ? OFFLINE_POLL_MS : LIVE_POLL_MS);
    this.pollTimer = setTimeout(() => this.pollStatus(), base * (0.8 + Math.random() * 0.4));
  }

  async fetchStatus() {
    if (!this.config.statusUrl) return null;
    try {
      const response = await fetch(this.config.statusUrl, { cache: "no-store" });
      if (!response.ok) return null;
      const status = await response.json();
      for (const listener of this.listeners) listener(status);
      return status;
    } catch {
      return null;
    }
  }

  async pollStatus() {
    const status = await this.fetchStatus();
    if (status && status.live && this.state === "offline") this.attach();
    else if (status && status.captions) this.captionsBegan();
    this.scheduleStatusPoll();
  }

  async checkAndAttach() {
    const status = await this.fetchStatus();
    if (status && !status.live) this.goOffline();
    else this.attach();
  }

  // Attaching a source --------------------------------------------------------------------

  attach() {
    this.chosenDelay = false; // a fresh source plays at live
    this.teardown();
    clearTimeout(this.retryTimer);
    this.setState(this.started ? "reconnecting" : "loading");
    this.attachedAt = performance.now();
    this.firstFrame = false;
    this.lastProgress = { time: -1, at: performance.now() };
    const Hls = window.Hls;
    const video = this.video;
    if (Hls && Hls.isSupported()) {
      this.native = false;
      this.attachHls(Hls);
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      this.native = true;
      video.src = this.config.manifestUrl;
      this.qualityLabel.hidden = true;
      this.play();
    } else if (!Hls) {
      this.fail("The player could not load (hls.js is missing on the server: run `make web`).", false);
    } else {
      this.fail("This browser cannot play live HLS video.", false);
    }
  }

  attachHls(Hls) {
    const config = this.vod ? { fragLoadingMaxRetry: 4, levelLoadingMaxRetry: 3 } : {
      lowLatencyMode: true,
      // Catch up (at up to 1.5x) when playback falls behind the PART-HOLD-BACK target,
      // instead of staying as far behind as it started: bench/latency.py measured
      // 1.68 s glass-to-glass without this and 1.28 s with it.
      maxLiveSyncPlaybackRate: 1.5,
      backBufferLength: 30,
      liveDurationInfinity: true,
      manifestLoadingMaxRetry: 1,
      levelLoadingMaxRetry: 3,
      fragLoadingMaxRetry: 4,
    };
    const timeline = captionsTimeline(Hls);
    if (timeline) config.timelineController = timeline;
    const hls = new Hls(config);
    this.hls = hls;
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      this.buildQualityMenu();
      this.offerCaptions((hls.levels || []).some((level) => {
        const group = level.attrs && level.attrs["CLOSED-CAPTIONS"];
        return Boolean(group) && group !== "NONE";
      }));
      this.play();
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_event, data) => this.levelSwitched(data.level));
    hls.on(Hls.Events.ERROR, (_event, data) => this.hlsError(data));
    hls.loadSource(this.config.manifestUrl);
    hls.attachMedia(this.video);
  }

  teardown() {
    this.endPause();
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    if (this.native) {
      this.video.removeAttribute("src");
      this.video.load();
      this.native = false;
    }
    if (this.rt) {
      this.rt.stop(); // closes the peer connection and DELETEs the WHEP session
      this.rt = null;
      this.video.srcObject = null;
      delete this.root.dataset.mode;
      this.realtimeButton.setAttribute("aria-pressed", "false");
    }
    this.endStall();
    this.currentLevel = -1;
    this.root.dataset.level = "";
  }

  play() {
    const attempt = this.video.play();
    if (attempt && attempt.catch) {
      attempt.catch((err) => {
        if (err && err.name === "NotAllowedError") {
          // Even muted autoplay was refused: one tap starts it.
          this.video.muted = true;
          this.setState("paused", "Tap to play");
          this.overlay.onclick = () => {
            this.overlay.onclick = null;
            this.play();
          };
        }
      });
    }
  }

  hlsError(data) {
    const Hls = window.Hls;
    if (!data.fatal) {
      if (data.details !== "bufferStalledError") this.reportError(data, false);
      return;
    }
    this.reportError(data, true);
    const code = data.response && data.response.code;
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR && this.retries < 3) {
      this.retries += 1;
      this.hls.recoverMediaError();
      return;
    }
    if (code === 404 || code === 410) {
      // The broadcast ended (or has not started): wait for it here.
      this.goOffline();
      return;
    }
    if (code === 401 || code === 403) {
      this.fail(hlsErrorText(data), false);
      return;
    }
    this.fail(hlsErrorText(data));
  }

  reportError(data, fatal) {
    const code = String(data.details || data.type || "unknown").replace(/[^A-Za-z0-9_.:-]/g, "_").slice(0, 64);
    // Non-fatal errors can repeat many times a second; one report per code per 10 s is enough.
    const now = performance.now();
    if (!fatal && now - (this.errorReported.get(code) || -Infinity) < 10_000) return;
    this.errorReported.set(code, now);
    const message = String((data.error && data.error.message) || data.reason || "").slice(0, 300);
    this.qoe.add("error", { code, fatal, message });
  }

  // Real-time (WHEP) ------------------------------------------------------------------------

  toggleRealtime() {
    if (this.rt) this.attach(); // back to LL-HLS; teardown ends the WHEP session
    else this.enterRealtime();
  }

  async enterRealtime() {
    this.teardown();
    clearTimeout(this.retryTimer);
    const session = new RealtimeSession(this.config.realtime, (err) => this.realtimeFailed(session, err));
    this.rt = session;
    this.root.dataset.mode = "realtime";
    this.realtimeButton.setAttribute("aria-pressed", "true");
    this.qualityLabel.hidden = true;
    this.offerCaptions(false); // WebRTC carries no captions
    this.setState("loading", MESSAGES.realtime);
    this.attachedAt = performance.now();
    this.firstFrame = false;
    this.lastProgress = { time: -1, at: performance.now() };
    try {
      const stream = await session.start();
      if (this.rt !== session) return; // left (or torn down) while connecting
      this.video.srcObject = stream;
      this.root.dataset.level = "webrtc";
      this.play();
    } catch (err) {
      this.realtimeFailed(session, err);
    }
  }

  realtimeFailed(session, err) {
    if (this.rt !== session) return;
    const error = err instanceof RealtimeError ? err : new RealtimeError("Real-time playback failed", "error");
    this.qoe.add("error", { code: `realtime_${error.code}`.slice(0, 64), fatal: false, message: error.message.slice(0, 300) });
    this.showNotice(`${error.message}: playing over LL-HLS (a few seconds behind) instead.`);
    this.attach();
  }

  showNotice(text) {
    if (!this.notice) return;
    clearTimeout(this.noticeTimer);
    this.notice.textContent = text;
    this.notice.hidden = false;
    this.noticeTimer = setTimeout(() => {
      this.notice.hidden = true;
    }, NOTICE_MS);
  }

  // Quality -------------------------------------------------------------------------------

  levelName(level) {
    if (!level) return "";
    if (level.height) return `${level.height}p`;
    return level.name || `${Math.round((level.bitrate || 0) / 1000)} kbit/s`;
  }

  buildQualityMenu() {
    const levels = this.hls.levels || [];
    const select = this.quality;
    select.replaceChildren(new Option("Auto", "-1"));
    levels
      .map((level, index) => ({ level, index }))
      .sort((a, b) => (b.level.height || b.level.bitrate) - (a.level.height || a.level.bitrate))
      .forEach(({ level, index }) => select.add(new Option(this.levelName(level), String(index))));
    select.value = "-1";
    this.qualityLabel.hidden = levels.length < 2;
    // A broadcast of sound alone (a radio show): say so where the picture would be.
    const audioOnly = levels.length > 0 && levels.every((level) => !level.videoCodec && !level.height);
    this.root.querySelector(".player-audio-only").hidden = !audioOnly;
    this.root.dataset.audioOnly = String(audioOnly);
    this.audioOnly = audioOnly; // no real-time (WebRTC) output: it carries video
    if (audioOnly && this.realtimeButton) this.realtimeButton.hidden = true;
  }

  levelSwitched(index) {
    const level = this.hls && this.hls.levels[index];
    if (!level) return;
    this.currentLevel = index;
    const name = this.levelName(level);
    this.root.dataset.level = name;
    const auto = this.hls.autoLevelEnabled;
    this.quality.options[0].text = auto ? `Auto (${name})` : "Auto";
    for (const option of this.quality.options) {
      if (option.value !== "-1") option.text = this.levelName(this.hls.levels[Number(option.value)]) + (Number(option.value) === index ? " ✓" : "");
    }
    this.qoe.add("quality", {
      level: index,
      height: Math.round(level.height || 0),
      bitrate: Math.round(level.bitrate || 0),
      auto,
    });
  }

  chooseLevel(value) {
    if (!this.hls) return;
    const index = Number(value);
    // currentLevel switches at once (flushing what is buffered); -1 hands control back to ABR.
    this.hls.currentLevel = index;
  }

  // Captions ------------------------------------------------------------------------------

  // The button shows where the playlist offers captions (hls.js) or the browser found a
  // captions track (native HLS, which makes its own); hls.js adds its track at the first cue.
  offerCaptions(offered) {
    this.captionsLoaded = offered;
    if (!this.captionsButton) return;
    this.captionsButton.hidden = !offered;
    this.applyCaptions();
  }

  // The broadcast's captions began after this player loaded playlists that offered none
  // (hls.js then reads none): the button shows, and the playlists are loaded again once
  // the viewer wants them (at once for a viewer who keeps captions on).
  captionsBegan() {
    if (!this.hls || this.vod || this.captionsLoaded || !this.captionsButton) return;
    this.captionsButton.hidden = false;
    this.captionsButton.setAttribute("aria-pressed", String(this.captionsOn));
    // Once a minute at most: a cache in front may still give the old playlists a while.
    if (this.captionsOn && performance.now() - this.captionsReloadAt > CAPTIONS_RELOAD_MS) {
      this.captionsReloadAt = performance.now();
      this.attach();
    }
  }

  // The captions tracks in channel order: the playlist names CC1 "Captions" and the others
  // "Captions CC3" and so on, and hls.js makes each track at its channel's first cue, in
  // whatever order those come.
  captionTracks() {
    const tracks = Array.from(this.video.textTracks || []).filter((track) => track.kind === "captions" || track.kind === "subtitles");
    const channel = (track) => {
      const named = /\bCC([1-4])\b/.exec(track.label || "");
      return named ? Number(named[1]) : 1;
    };
    return tracks.map((track, index) => ({ track, index }))
      .sort((a, b) => channel(a.track) - channel(b.track) || a.index - b.index)
      .map(({ track }) => track);
  }

  // `chosen`: the button picked the track at `captionsIndex`; otherwise a track the viewer
  // turned on in the browser's own menu stays the one shown.
  applyCaptions(chosen = false) {
    const tracks = this.captionTracks();
    const showing = tracks.findIndex((track) => track.mode === "showing");
    if (!chosen && showing >= 0) this.captionsIndex = showing;
    const shown = tracks[Math.min(this.captionsIndex, tracks.length - 1)];
    for (const track of tracks) {
      // Hidden, not disabled: hls.js keeps adding cues, so turning them on shows the current one.
      track.mode = this.captionsOn && track === shown ? "showing" : "hidden";
    }
    if (this.captionsButton) {
      this.captionsButton.setAttribute("aria-pressed", String(this.captionsOn));
      // Several channels: the button goes through them, then off; it says which shows.
      const which = this.captionsOn && shown && tracks.length > 1 ? shown.label || "" : "";
      this.captionsButton.setAttribute("aria-label", which ? `Captions: ${which}` : "Captions");
      this.captionsButton.title = tracks.length > 1
        ? `Captions from the broadcast: ${which || "off"}; next channel (c)`
        : "Captions from the broadcast (c)";
    }
  }

  toggleCaptions() {
    const tracks = this.captionTracks();
    if (this.captionsOn && this.captionsIndex + 1 < tracks.length) {
      this.captionsIndex += 1; // the next channel (CC3 after CC1), captions staying on
      this.applyCaptions(true);
      return;
    }
    this.captionsOn = !this.captionsOn;
    this.captionsIndex = 0;
    try {
      window.localStorage.setItem(CAPTIONS_KEY, this.captionsOn ? "on" : "off");
    } catch {
      // not remembered; it still applies to this page
    }
    if (this.captionsOn && this.hls && !this.captionsLoaded) {
      this.attach(); // loaded before the captions began: load them now (`captionsBegan`)
      return;
    }
    this.applyCaptions(true);
  }

  // Video element events --------------------------------------------------------------------

  bindVideo() {
    const video = this.video;
    video.addEventListener("playing", () => {
      this.retries = 0;
      this.endStall();
      this.viewerSeeking = false;
      if (!this.firstFrame) {
        this.firstFrame = true;
        this.qoe.add("first_frame", { ms: Math.round(performance.now() - this.attachedAt) });
        const rendition = (this.root.dataset.level || "").replace(/[^A-Za-z0-9_-]/g, "");
        this.qoe.add("start", {
          muted: video.muted,
          native: this.native,
          rendition,
          protocol: this.rt ? "whep" : "hls",
          player: this.rt ? "whep" : this.native ? "native" : "hls.js",
        });
        this.started = true;
      }
      this.setState("playing");
      this.updateMute();
    });
    video.addEventListener("waiting", () => {
      if (!this.firstFrame) return;
      // Loading where the viewer sought to is no rebuffering (Mux counts seeks apart).
      if (!this.stallStart && !this.viewerSeeking) this.stallStart = performance.now();
      this.setState("buffering");
    });
    video.addEventListener("seeked", () => {
      if (video.readyState >= 3) this.viewerSeeking = false; // it plays on from there
    });
    video.addEventListener("ended", () => {
      if (this.vod) return; // the recording played to its end; the controls replay it
      // The playlist ended: the publisher stopped. Wait here for the next broadcast.
      this.goOffline();
    });
    video.addEventListener("volumechange", () => this.updateMute());
    video.addEventListener("play", () => {
      this.updatePlayButton();
      this.endPause();
    });
    video.addEventListener("pause", () => {
      this.updatePlayButton();
      // The viewer's pause (the bar, a key, the browser's own controls), not one of a
      // teardown or an ending, which change the state first.
      if (this.state === "playing" && !video.ended && !this.pauseStart) {
        this.pauseStart = performance.now();
        this.chosenDelay = true;
      }
    });
    video.addEventListener("error", () => {
      if (!this.native) return;
      const error = video.error;
      this.qoe.add("error", { code: `media_${error ? error.code : 0}`, fatal: true, message: (error && error.message) || "" });
      this.checkAndAttachSoon();
    });
  }

  checkAndAttachSoon() {
    this.teardown();
    this.setState("reconnecting");
    this.retryLater();
  }

  // The viewer's pause so far, as QoE event fields (from now on it counts afresh), or null.
  pausedFor() {
    if (!this.pauseStart) return null;
    const now = performance.now();
    const ms = Math.round(now - this.pauseStart);
    this.pauseStart = now;
    return { ms };
  }

  endPause() {
    const pause = this.pausedFor();
    this.pauseStart = 0;
    if (pause) this.qoe.add("pause", pause);
  }

  endStall() {
    if (this.stallStart) {
      this.qoe.add("stall", { ms: Math.round(performance.now() - this.stallStart) });
      this.stallStart = 0;
    }
  }

  // Controls ------------------------------------------------------------------------------

  bindControls() {
    if (this.playButton) this.playButton.addEventListener("click", () => this.togglePause());
    this.root.addEventListener("keydown", (event) => this.onKey(event));
    this.unmute.addEventListener("click", () => {
      this.video.muted = false;
      if (this.video.paused) this.play();
    });
    this.muteButton.addEventListener("click", () => {
      this.video.muted = !this.video.muted;
    });
    if (this.volume) this.volume.addEventListener("input", () => this.setVolume(Number(this.volume.value)));
    this.quality.addEventListener("change", () => this.chooseLevel(this.quality.value));
    if (this.realtimeButton) this.realtimeButton.addEventListener("click", () => this.toggleRealtime());
    if (this.captionsButton) {
      this.captionsButton.addEventListener("click", () => this.toggleCaptions());
      const textTracks = this.video.textTracks;
      if (textTracks && textTracks.addEventListener) {
        textTracks.addEventListener("addtrack", () => {
          if (this.rt) return;
          if (this.native) this.captionsButton.hidden = this.captionTracks().length === 0;
          this.applyCaptions();
        });
      }
    }
    this.liveBadge.addEventListener("click", () => this.seekToLive());
    if (this.dvr || (this.vod && this.seekBar)) {
      this.seekBar.addEventListener("input", () => {
        this.seeking = true;
      });
      this.seekBar.addEventListener("change", () => {
        this.seeking = false;
        this.seekTo(Number(this.seekBar.value));
      });
      if (this.dvr) this.goLive.addEventListener("click", () => this.seekToLive());
      this.video.addEventListener("timeupdate", () => this.updateSeekBar());
      this.video.addEventListener("durationchange", () => this.updateSeekBar());
      if (this.config.previewUrl) {
        this.preview = new SeekPreview(this.root, this.seekBar, {
          still: (seconds) => (this.vod ? this.recordingStill(seconds) : this.dvrStill(seconds)),
          label: (seconds) => (this.vod ? clock(seconds) : this.behindLabel(seconds)),
          dragging: () => this.seeking,
        });
      }
    }
    this.fullscreen.addEventListener("click", () => this.toggleFullscreen());
  }

  togglePause() {
    if (!(this.video.paused || this.video.ended)) {
      this.video.pause();
      return;
    }
    // Live without a DVR window: a pause that outlasted the playlist's window resumes at
    // live (nothing before the window can be played again, or sought to).
    const start = !this.vod && !this.dvr && !this.rt ? this.liveWindowStart() : null;
    if (start != null && this.video.currentTime < start) {
      this.seekToLive();
      return;
    }
    this.play();
  }

  // Where the live playlist's window begins (hls.js keeps older media buffered, and counts
  // it seekable), or null.
  liveWindowStart() {
    if (this.hls) {
      const level = (this.hls.levels || [])[this.hls.currentLevel];
      const fragments = level && level.details && level.details.fragments;
      return fragments && fragments.length ? fragments[0].start : null;
    }
    const seekable = this.video.seekable;
    return seekable.length ? seekable.start(0) : null;
  }

  toggleFullscreen() {
    if (document.fullscreenElement) document.exitFullscreen();
    else if (this.root.requestFullscreen) this.root.requestFullscreen();
    else if (this.video.webkitEnterFullscreen) this.video.webkitEnterFullscreen();
  }

  updatePlayButton() {
    if (!this.playButton) return;
    const paused = this.video.paused;
    this.playButton.dataset.paused = String(paused);
    this.playButton.setAttribute("aria-label", paused ? "Play" : "Pause");
    this.playButton.title = paused ? "Play (k)" : "Pause (k)";
  }

  // The player's keys, wherever focus is inside it; a field keeps what it types, a button
  // its Space, the seek bar its arrows.
  onKey(event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    const tag = target && target.tagName;
    const typing = tag === "TEXTAREA" || tag === "SELECT" || (tag === "INPUT" && target.type !== "range");
    if (typing) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (key === " " && (tag === "BUTTON" || tag === "INPUT")) return;
    if ((key === "ArrowLeft" || key === "ArrowRight") && tag === "INPUT") return;
    if (key === " " || key === "k") this.togglePause();
    else if (key === "m") this.video.muted = !this.video.muted;
    else if ((key === "ArrowUp" || key === "ArrowDown") && tag !== "INPUT") {
      const now = this.video.muted ? 0 : this.video.volume;
      this.setVolume(now + (key === "ArrowUp" ? VOLUME_STEP : -VOLUME_STEP));
    } else if (key === "f") this.toggleFullscreen();
    else if (key === "c" && this.captionsButton && !this.captionsButton.hidden) this.toggleCaptions();
    else if ((key === "ArrowLeft" || key === "ArrowRight") && this.seekRange()) {
      this.seekTo(this.video.currentTime + (key === "ArrowLeft" ? -SEEK_STEP_S : SEEK_STEP_S));
    } else return;
    event.preventDefault();
  }

  updateMute() {
    const muted = this.video.muted;
    this.unmute.hidden = !muted || this.state !== "playing";
    this.muteButton.setAttribute("aria-pressed", String(muted));
    this.muteButton.title = muted ? "Unmute (m)" : "Mute (m)";
    if (this.volume) {
      const level = muted ? 0 : this.video.volume;
      this.volume.value = String(level);
      this.volume.setAttribute("aria-valuetext", muted ? "muted" : `${Math.round(level * 100)}%`);
    }
  }

  // A level from 0 to 1: 0 mutes, any other unmutes (a viewer's gesture may), and is kept.
  setVolume(level) {
    const volume = Math.min(1, Math.max(0, Math.round(level * 100) / 100));
    if (volume > 0) {
      this.video.volume = volume;
      try {
        window.localStorage.setItem(VOLUME_KEY, String(volume));
      } catch {
        // not remembered; it still applies to this page
      }
    }
    this.video.muted = volume === 0;
  }

  seekToLive() {
    this.chosenDelay = false;
    const end = this.liveEdge();
    if (end != null) {
      this.beginViewerSeek();
      this.video.currentTime = end;
    }
    if (this.video.paused) this.play();
    this.updateSeekBar();
  }

  // The viewer moves the playhead: a stall under way ends here (they left it), and the
  // wait for the new position's media is seek time, not a stall (QoE: Mux's rebuffering
  // leaves seeks out), until it plays.
  beginViewerSeek() {
    this.endStall();
    this.viewerSeeking = true;
  }

  // Where live playback sits: hls.js's target behind the newest part, else the seekable end.
  liveEdge() {
    const target = this.hls ? this.hls.liveSyncPosition : null;
    const seekable = this.video.seekable;
    const end = target ?? (seekable.length ? seekable.end(seekable.length - 1) - 1 : null);
    return end != null && Number.isFinite(end) ? end : null;
  }

  // DVR: a position inside the window, clamped to what is listed and not past live.
  seekTo(position) {
    const range = this.seekRange();
    if (!range) return;
    const target = Math.min(range.live, Math.max(range.start, position));
    if (!this.vod) this.chosenDelay = range.live - target >= BEHIND_LIVE_S;
    this.beginViewerSeek();
    this.video.currentTime = target;
    if (this.video.paused && !this.vod) this.play();
    this.updateSeekBar();
  }

  // A recording's still at `seconds`: the storyboard's step before it.
  recordingStill(seconds) {
    const step = Math.max(1, Number(this.config.previewStep) || 2);
    const end = Number(this.seekBar.max) || Number(this.config.duration) || 0;
    const still = Math.min(Math.floor(seconds / step) * step, Math.max(0, end - 0.5));
    return this.stillAddress(`time=${still.toFixed(1)}`);
  }

  // The thumbnail route's still for `query`, with a signed playback id's thumbnail token.
  stillAddress(query) {
    const token = this.config.previewToken;
    return `${this.config.previewUrl}?${query}&width=${PREVIEW_WIDTH}`
      + (token ? `&token=${encodeURIComponent(token)}` : "");
  }

  // A DVR window's still at `seconds`: the first picture of the segment that holds it
  // (by its media sequence number, the same in every rendition); null where hls.js
  // lists none (native playback lists no segments to the page).
  dvrStill(seconds) {
    const hls = this.hls;
    const level = hls?.levels?.[hls.currentLevel >= 0 ? hls.currentLevel : hls.loadLevel];
    const fragments = level?.details?.fragments;
    if (!fragments?.length) return null;
    let found = fragments[0];
    for (const fragment of fragments) {
      if (fragment.start > seconds) break;
      found = fragment;
    }
    if (typeof found.sn !== "number") return null;
    return this.stillAddress(`segment=${found.sn}`);
  }

  behindLabel(seconds) {
    const range = this.seekRange();
    const behind = range ? range.live - seconds : 0;
    return behind < BEHIND_LIVE_S ? "Live" : `-${clock(behind)}`;
  }

  // Where a seek may go: a recording's whole duration, or the DVR window up to live.
  seekRange() {
    if (this.vod) {
      const duration = this.video.duration;
      return Number.isFinite(duration) && duration > 0 ? { start: 0, live: duration } : null;
    }
    const seekable = this.video.seekable;
    const live = this.liveEdge();
    if (!seekable.length || live == null) return null;
    return { start: seekable.start(0), live };
  }

  updateSeekBar() {
    if (this.vod) {
      this.updateRecordingBar();
      return;
    }
    if (!this.dvr) return;
    const live = !this.rt && ["playing", "buffering", "paused"].includes(this.state);
    const range = live ? this.seekRange() : null;
    this.seekBar.hidden = !range;
    if (!range) {
      this.goLive.hidden = true;
      return;
    }
    const behind = Math.max(0, range.live - this.video.currentTime);
    this.goLive.hidden = behind < BEHIND_LIVE_S;
    this.root.dataset.behind = behind.toFixed(1);
    if (this.seeking) return; // never move the thumb under the viewer's finger
    this.seekBar.min = range.start.toFixed(1);
    this.seekBar.max = range.live.toFixed(1);
    this.seekBar.value = this.video.currentTime.toFixed(1);
    this.seekBar.setAttribute("aria-valuetext", behind < BEHIND_LIVE_S ? "live" : `${Math.round(behind)} seconds behind live`);
  }

  // A recording: the seek bar spans its duration, the readout says where playback is.
  updateRecordingBar() {
    const video = this.video;
    const range = this.seekRange();
    if (this.seekBar) this.seekBar.hidden = !range;
    if (!range) {
      this.delayEl.textContent = "";
      return;
    }
    this.delayEl.textContent = `${clock(video.currentTime)} / ${clock(range.live)}`;
    if (!this.seekBar || this.seeking) return;
    this.seekBar.min = "0";
    this.seekBar.max = range.live.toFixed(1);
    this.seekBar.value = video.currentTime.toFixed(1);
    this.seekBar.setAttribute("aria-valuetext", `${clock(video.currentTime)} of ${clock(range.live)}`);
  }

  // Delay and the watchdog -------------------------------------------------------------------

  // The wall-clock time (EXT-X-PROGRAM-DATE-TIME) of the frame on screen, or null.
  playingDate() {
    if (this.hls) {
      const date = this.hls.playingDate;
      return date && Number.isFinite(date.getTime()) ? date : null;
    }
    if (this.native && this.video.getStartDate) {
      const start = this.video.getStartDate().getTime();
      if (Number.isFinite(start) && start > 0) return new Date(start + this.video.currentTime * 1000);
    }
    return null;
  }

  delaySeconds() {
    const video = this.video;
    const date = this.playingDate();
    if (date) {
      const seconds = (Date.now() - date.getTime()) / 1000;
      if (seconds >= 0 && seconds < 3600) return seconds;
    }
    if (this.hls) {
      const latency = this.hls.latency;
      if (Number.isFinite(latency) && latency > 0) return latency;
      return null;
    }
    const seekable = video.seekable;
    if (seekable.length) return Math.max(0, seekable.end(seekable.length - 1) - video.currentTime);
    return null;
  }

  watchdog() {
    if (this.vod) return; // no live edge to measure, and a seek must not look stuck
    const now = performance.now();
    if (this.rt && (this.state === "playing" || this.state === "buffering")) {
      // WebRTC has no "behind live" to measure here: show the jitter buffer's delay.
      const delay = this.rt.delay;
      this.delayEl.textContent = delay != null ? `real-time · ${Math.round(delay * 1000)} ms buffer` : "real-time";
      this.root.dataset.delay = delay != null ? delay.toFixed(3) : "0";
      this.liveBadge.classList.remove("is-behind");
    } else if (this.state === "playing" || this.state === "buffering") {
      this.updateSeekBar();
      const delay = this.delaySeconds();
      if (delay != null) {
        this.delayEl.textContent = `${delay.toFixed(1)} s behind`;
        this.root.dataset.delay = delay.toFixed(2);
        this.liveBadge.classList.toggle("is-behind", delay > 6);
        // A picture the viewer paused or sought back is behind live by their doing.
        if (!this.video.paused && !this.chosenDelay && now - this.lastLatencySample >= LATENCY_SAMPLE_MS) {
          this.lastLatencySample = now;
          this.qoe.add("latency", { seconds: Math.min(3600, Math.round(delay * 1000) / 1000) });
        }
      }
    }
    // A picture that stopped moving while we think we are live: reload, or go offline.
    const video = this.video;
    if (["playing", "buffering", "loading", "reconnecting"].includes(this.state)) {
      if (video.currentTime !== this.lastProgress.time || (video.paused && this.state === "playing")) {
        this.lastProgress = { time: video.currentTime, at: now };
      } else if (now - this.lastProgress.at > STUCK_AFTER_MS) {
        this.lastProgress = { time: video.currentTime, at: now };
        this.endStall();
        if (this.rt && !this.firstFrame && this.state === "loading") {
          // Still connecting: RealtimeSession has its own timeouts.
        } else if (this.rt) {
          this.realtimeFailed(this.rt, new RealtimeError("Real-time video stopped", "stuck"));
        } else {
          this.checkAndAttach();
        }
      }
    }
  }
}

export function readConfig() {
  return JSON.parse(document.getElementById("golive-config").textContent);
}
