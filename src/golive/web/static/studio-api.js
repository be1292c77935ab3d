// The studio's talk with its server: same-origin JSON under /studio/api/ with the
// session's CSRF token in a header (the session cookie itself is HttpOnly). A 401 means
// the session ended (logout, expiry, revoked token): back to the login page.

const CSRF = document.querySelector('meta[name="csrf-token"]')?.content || "";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(method, path, body) {
  const init = { method, headers: { "X-CSRF-Token": CSRF, Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(`/studio/api/${path}`, init);
  if (response.status === 401) {
    location.assign("/studio/login");
    throw new ApiError(401, "Your session has ended; sign in again.");
  }
  if (response.status === 204) return null;
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const detail = payload && (payload.error || payload.detail || payload.errors);
    const text = Array.isArray(detail) ? detail.map((d) => d.message || JSON.stringify(d)).join("; ")
      : typeof detail === "object" && detail ? detail.message || JSON.stringify(detail) : detail;
    throw new ApiError(response.status, text || `request failed (${response.status})`);
  }
  return payload;
}

export function showError(element, error) {
  element.textContent = error instanceof Error ? error.message : String(error);
  element.hidden = false;
}

// Buttons with data-copy="ELEMENT_ID" copy that element's text.
export function bindCopyButtons(root = document) {
  root.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-copy]");
    if (!button) return;
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    const text = source.textContent.trim();
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const range = document.createRange();
      range.selectNodeContents(source);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      document.execCommand("copy");
    }
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => {
      button.textContent = label;
    }, 1500);
  });
}

// The one-time key panel after a create or a reset: the stream key and the backup key.
export function revealKey(stream) {
  const panel = document.getElementById("key-reveal");
  document.getElementById("key-stream").textContent = stream.name;
  document.getElementById("key-value").textContent = stream.stream_key;
  document.getElementById("key-rtmp-url").textContent = stream.ingest.rtmp_url || `${stream.ingest.rtmp}/${stream.stream_key}`;
  document.getElementById("key-backup-value").textContent = stream.backup_stream_key;
  // In the fragment: the browser never sends it to a server, and /publish takes it from there.
  document.getElementById("key-publish").href = `/publish#key=${encodeURIComponent(stream.stream_key)}`;
  panel.hidden = false;
  panel.scrollIntoView({ block: "nearest" });
  document.getElementById("key-done").onclick = () => {
    // Forget the key: it is not kept anywhere in the page once dismissed.
    document.getElementById("key-value").textContent = "";
    document.getElementById("key-rtmp-url").textContent = "";
    document.getElementById("key-backup-value").textContent = "";
    document.getElementById("key-publish").href = "/publish";
    panel.hidden = true;
  };
}

export function statusBadge(status) {
  const span = document.createElement("span");
  span.className = `status status-${status}`;
  span.textContent = status === "active" ? "live" : status;
  return span;
}

export function formatTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString([], { dateStyle: "short", timeStyle: "medium" });
}
