// The studio's chat: the watch page's chat panel, signed in with a moderator chat token
// minted by the server for this session, plus delete / timeout / ban on each message
// (WebSocket frames) and the room's settings (slow mode, signed-in only, clear).
import { ChatPanel } from "/static/chat.js";
import { api, showError } from "/static/studio-api.js";

const TIMEOUT_SECONDS = 600;

class ModeratorChat extends ChatPanel {
  addMessage(frame) {
    super.addMessage(frame);
    const li = this.el.log.querySelector(`[data-id="${CSS.escape(String(frame.id))}"]`);
    if (!li || !frame.user || (this.user && frame.user.id === this.user.id)) return;
    const tools = document.createElement("span");
    tools.className = "mod-tools";
    for (const [action, label, title] of [
      ["delete", "Delete", "Delete this message for everyone"],
      ["timeout", "Timeout", "Mute this user for 10 minutes"],
      ["ban", "Ban", "Ban this user from this chat"],
    ]) {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.action = action;
      button.textContent = label;
      button.title = title;
      tools.append(button);
    }
    li.append(tools);
  }
}

export async function startModeratorChat(streamId, chatUrl) {
  const $ = (id) => document.getElementById(id);
  const error = $("chat-error");
  if (!chatUrl) {
    $("chat-state").textContent = "no playback id, no chat";
    return null;
  }
  let token;
  try {
    token = (await api("POST", `chat-token/${encodeURIComponent(streamId)}`)).data.token;
  } catch (err) {
    showError(error, err);
    return null;
  }
  const chat = new ModeratorChat(
    {
      log: $("chat-log"), error, state: $("chat-state"), viewers: $("chat-viewers"),
      joinForm: $("chat-join"), nameInput: $("chat-name"), sendForm: $("chat-send"), textInput: $("chat-text"),
    },
    chatUrl,
    { token },
  );
  chat.connect();

  $("chat-log").addEventListener("click", (event) => {
    const button = event.target.closest(".mod-tools button");
    if (!button) return;
    const li = button.closest(".chat-message");
    const name = li.querySelector(".chat-name")?.textContent || "this user";
    switch (button.dataset.action) {
      case "delete":
        chat.send({ type: "delete", id: Number(li.dataset.id) });
        break;
      case "timeout":
        if (confirm(`Mute ${name} for 10 minutes?`)) chat.send({ type: "timeout", user_id: li.dataset.user, seconds: TIMEOUT_SECONDS });
        break;
      case "ban":
        if (confirm(`Ban ${name} from this chat?`)) chat.send({ type: "ban", user_id: li.dataset.user });
        break;
      default:
        break;
    }
  });

  const base = `live-streams/${encodeURIComponent(streamId)}/chat`;
  const slow = $("chat-slow");
  const signedIn = $("chat-signed-in");
  const terms = $("chat-terms-text");
  const termsState = $("chat-terms-state");
  // Each answer sets only the controls it answers for: the answer to one change (or the
  // first load) must not undo another control the moderator changed meanwhile.
  const touched = new Set();
  const apply = (settings, keys) => {
    if (keys.includes("slow_mode")) {
      if (![...slow.options].some((o) => o.value === String(settings.slow_mode))) {
        slow.append(new Option(`${settings.slow_mode} s`, String(settings.slow_mode)));
      }
      slow.value = String(settings.slow_mode);
    }
    if (keys.includes("signed_in_only")) signedIn.checked = settings.signed_in_only;
    if (keys.includes("blocked_terms")) {
      terms.value = settings.blocked_terms.join("\n");
      const count = settings.blocked_terms.length;
      $("chat-terms-count").textContent = count ? `(${count})` : "(none)";
    }
  };
  // Whether the node took the change.
  const change = async (body) => {
    Object.keys(body).forEach((key) => touched.add(key));
    try {
      apply((await api("PATCH", base, body)).data, Object.keys(body));
      return true;
    } catch (err) {
      showError(error, err);
      return false;
    }
  };
  slow.addEventListener("change", () => change({ slow_mode: Number(slow.value) }));
  signedIn.addEventListener("change", () => change({ signed_in_only: signedIn.checked }));
  // The list as the node keeps it (case-folded, duplicates gone) replaces the text.
  $("chat-terms-save").addEventListener("click", async () => {
    const list = terms.value.split("\n").map((line) => line.trim()).filter(Boolean);
    termsState.textContent = "saving…";
    termsState.textContent = await change({ blocked_terms: list }) ? "saved" : "not saved";
  });
  terms.addEventListener("input", () => { termsState.textContent = "not saved"; });
  $("chat-clear").addEventListener("click", async () => {
    if (!confirm("Clear the chat for everyone?")) return;
    try {
      await api("POST", `${base}/clear`);
    } catch (err) {
      showError(error, err);
    }
  });
  try {
    const settings = (await api("GET", base)).data;
    apply(settings, ["slow_mode", "signed_in_only", "blocked_terms"]
      .filter((key) => !touched.has(key)));
  } catch (err) {
    showError(error, err);
  }
  return chat;
}
