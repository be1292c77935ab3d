// The studio's stream list: status badges and live thumbnails refreshed every few seconds,
// and "New stream".
import { api, revealKey, showError, statusBadge } from "/static/studio-api.js";

const POLL_MS = 3000;
const THUMBNAIL_MS = 10000;
const THUMBNAIL_WIDTH = 160;

// One <img> per playback id, kept across renders so a refresh does not blank it; its URL
// changes every THUMBNAIL_MS so the picture follows the stream.
const thumbnails = new Map();

function thumbnail(stream) {
  const pid = (stream.playback_ids || []).find((p) => p.policy === "public");
  if (stream.status !== "active" || !pid) {
    const empty = document.createElement("span");
    empty.className = "stream-thumb stream-thumb-empty";
    empty.setAttribute("aria-hidden", "true");
    return empty;
  }
  let img = thumbnails.get(pid.id);
  if (!img) {
    img = document.createElement("img");
    img.className = "stream-thumb";
    img.alt = `${stream.name} (live)`;
    img.width = THUMBNAIL_WIDTH;
    img.height = THUMBNAIL_WIDTH * 9 / 16;
    img.decoding = "async";
    img.addEventListener("error", () => { img.dataset.failed = "1"; });
    img.addEventListener("load", () => { delete img.dataset.failed; });
    thumbnails.set(pid.id, img);
  }
  const bucket = Math.floor(Date.now() / THUMBNAIL_MS);
  const src = `/thumbnail/${encodeURIComponent(pid.id)}.jpg?width=${THUMBNAIL_WIDTH}&v=${bucket}`;
  if (img.getAttribute("src") !== src) img.src = src;
  return img;
}

export function startStreamList() {
  const list = document.getElementById("stream-list");
  const error = document.getElementById("streams-error");
  const form = document.getElementById("new-stream");

  function render(streams) {
    if (!streams.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "No streams yet. Create one above.";
      list.replaceChildren(li);
      return;
    }
    list.replaceChildren(...streams.map((stream) => {
      const li = document.createElement("li");
      li.className = "stream-row";
      li.dataset.id = stream.id;
      const link = document.createElement("a");
      link.href = `/studio/streams/${encodeURIComponent(stream.id)}`;
      link.className = "stream-name";
      link.textContent = stream.name;
      const key = document.createElement("code");
      key.className = "key-prefix";
      key.textContent = `${stream.stream_key_prefix}…`;
      key.title = "Stream key (first characters)";
      const facts = document.createElement("span");
      facts.className = "muted small";
      const live = stream.live;
      if (live && live.video_bitrate_kbps != null) facts.textContent = `${Math.round(live.video_bitrate_kbps)} kbit/s`;
      li.append(thumbnail(stream), statusBadge(stream.status), link, facts, key);
      return li;
    }));
  }

  async function refresh() {
    try {
      const body = await api("GET", "live-streams?limit=1000");
      render(body.data);
      error.hidden = true;
    } catch (err) {
      showError(error, err);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = document.getElementById("new-name").value.trim();
    if (!name) return;
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const body = await api("POST", "live-streams", { name });
      form.reset();
      revealKey(body.data);
      await refresh();
    } catch (err) {
      showError(error, err);
    } finally {
      button.disabled = false;
    }
  });

  refresh();
  setInterval(() => {
    if (document.visibilityState === "visible") refresh();
  }, POLL_MS);
}
