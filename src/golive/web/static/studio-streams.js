// The studio's stream list: status badges refreshed every few seconds, and "New stream".
import { api, revealKey, showError, statusBadge } from "/static/studio-api.js";

const POLL_MS = 3000;

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
      li.append(statusBadge(stream.status), link, facts, key);
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
