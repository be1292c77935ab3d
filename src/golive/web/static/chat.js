// The watch page's chat panel: WebSocket /chat/PLAYBACK_ID with the JSON frames of
// design.md (join, send; message, deleted, cleared, viewers, system, identity, error).
// The signed identity the server hands out on join is kept in localStorage and passed
// back as ?identity= so a viewer keeps their name across visits.

const MAX_LINES = 300;
// A refusal this soon after a send answers it: the text goes back into the box to edit
// or send again (slow mode, a blocked term, too fast), not lost.
const REFUSAL_WINDOW_MS = 10000;
const IDENTITY_KEY = "golive-chat-identity";

function formatTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export class ChatPanel {
  constructor(elements, path, options = {}) {
    this.el = elements;
    this.path = path;
    this.token = options.token || null; // a chat token (the studio's moderator token)
    this.socket = null;
    this.retries = 0;
    this.user = null;
    this.errorTimer = 0;
    this.unanswered = null; // the last text sent and when, until it shows or is refused
    this.el.joinForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const name = this.el.nameInput.value.trim();
      if (name) this.send({ type: "join", name });
    });
    this.el.sendForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = this.el.textInput.value;
      if (!text.trim()) return;
      if (this.send({ type: "send", text })) {
        this.el.textInput.value = "";
        this.unanswered = { text, at: performance.now() };
      }
    });
  }

  connect() {
    // The path may carry a query already (a signed stream's ?playback_token=).
    const url = new URL(this.path, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const identity = localStorage.getItem(IDENTITY_KEY);
    if (this.token) url.searchParams.set("token", this.token);
    else if (identity) url.searchParams.set("identity", identity);
    const socket = new WebSocket(url.href);
    this.socket = socket;
    this.setState("connecting…");
    socket.addEventListener("open", () => {
      this.retries = 0;
      this.setState("");
      this.el.log.replaceChildren(); // the server sends the recent history again
    });
    socket.addEventListener("message", (event) => {
      let value;
      try {
        value = JSON.parse(event.data);
      } catch {
        return;
      }
      for (const frame of Array.isArray(value) ? value : [value]) this.handle(frame);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (event.code === 4404) {
        this.setState("no chat here");
        return;
      }
      if (event.code === 4403) {
        // A signed stream's chat without a chat token (aud c): retrying will not help.
        this.setState(event.reason || "this chat needs a chat token");
        return;
      }
      if (event.code === 4401) localStorage.removeItem(IDENTITY_KEY);
      const delay = Math.min(30_000, 1000 * 2 ** this.retries) * (0.75 + Math.random() * 0.5);
      this.retries += 1;
      this.setState("reconnecting…");
      setTimeout(() => this.connect(), delay);
    });
  }

  send(frame) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) {
      this.showError("Not connected to the chat yet; try again in a moment.");
      return false;
    }
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  setState(text) {
    this.el.state.textContent = text;
    this.el.state.hidden = !text;
  }

  handle(frame) {
    switch (frame.type) {
      case "message":
        if (this.unanswered && this.user && frame.user && frame.user.id === this.user.id) {
          this.unanswered = null; // it went out (the server may trim it: no text match)
        }
        this.addMessage(frame);
        break;
      case "deleted": {
        const line = this.el.log.querySelector(`[data-id="${CSS.escape(String(frame.id))}"]`);
        if (line) line.remove();
        break;
      }
      case "cleared":
        this.el.log.replaceChildren();
        this.addSystem("The chat was cleared by a moderator.");
        break;
      case "viewers":
        this.el.viewers.textContent = `${frame.count} in chat`;
        break;
      case "system":
        this.addSystem(frame.text);
        break;
      case "identity":
        this.user = frame.user;
        if (frame.token) localStorage.setItem(IDENTITY_KEY, frame.token);
        this.el.joinForm.hidden = true;
        this.el.sendForm.hidden = false;
        this.el.textInput.placeholder = `Chat as ${frame.user.name}…`;
        break;
      case "error": {
        this.showError(frame.reason);
        const refused = this.unanswered;
        this.unanswered = null;
        if (refused && performance.now() - refused.at < REFUSAL_WINDOW_MS
            && !this.el.textInput.value) {
          this.el.textInput.value = refused.text;
        }
        break;
      }
      default:
        break;
    }
  }

  addMessage(frame) {
    const li = document.createElement("li");
    li.className = "chat-message";
    li.dataset.id = String(frame.id);
    if (frame.user) li.dataset.user = frame.user.id;
    if (this.user && frame.user && frame.user.id === this.user.id) li.classList.add("mine");
    const time = document.createElement("time");
    time.textContent = formatTime(frame.sent_at);
    if (frame.sent_at) time.dateTime = frame.sent_at;
    const name = document.createElement("b");
    name.className = "chat-name";
    name.textContent = frame.user ? frame.user.name : "?";
    const text = document.createElement("span");
    text.className = "chat-text";
    text.textContent = frame.text;
    li.append(time, name, text);
    this.append(li);
  }

  addSystem(text) {
    const li = document.createElement("li");
    li.className = "chat-system";
    li.textContent = text;
    this.append(li);
  }

  append(li) {
    const log = this.el.log;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.append(li);
    while (log.children.length > MAX_LINES) log.firstElementChild.remove();
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  showError(reason) {
    this.el.error.textContent = reason;
    this.el.error.hidden = false;
    clearTimeout(this.errorTimer);
    this.errorTimer = setTimeout(() => {
      this.el.error.hidden = true;
    }, 8000);
  }
}
