// The studio's signing keys (GET/POST/DELETE /api/v1/signing-keys through the studio): the
// list, "New signing key" with its private key shown once, and delete.
import { api, formatTime, showError } from "/static/studio-api.js";

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

export function startSigningKeys() {
  const rows = document.getElementById("signing-key-rows");
  const error = document.getElementById("signing-keys-error");
  const form = document.getElementById("new-signing-key");
  const reveal = document.getElementById("signing-key-reveal");

  function render(keys) {
    if (!keys.length) {
      const tr = document.createElement("tr");
      const td = cell("No signing keys yet: signed playback ids cannot be played.");
      td.className = "muted";
      td.colSpan = 4;
      tr.append(td);
      rows.replaceChildren(tr);
      return;
    }
    rows.replaceChildren(...keys.map((key) => {
      const tr = document.createElement("tr");
      tr.className = "signing-key-row";
      tr.dataset.id = key.id;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "danger";
      remove.textContent = "Delete";
      remove.addEventListener("click", async () => {
        if (!confirm(`Delete signing key ${key.id}? Every token it signed stops working.`)) return;
        try {
          await api("DELETE", `signing-keys/${encodeURIComponent(key.id)}`);
          await refresh();
        } catch (err) {
          showError(error, err);
        }
      });
      const actions = document.createElement("td");
      actions.append(remove);
      const id = cell(key.id);
      id.className = "audit-action";
      tr.append(id, cell(key.algorithm), cell(formatTime(key.created_at)), actions);
      return tr;
    }));
  }

  async function refresh() {
    try {
      render((await api("GET", "signing-keys")).data);
      error.hidden = true;
    } catch (err) {
      showError(error, err);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const key = (await api("POST", "signing-keys", { algorithm: form.elements.algorithm.value })).data;
      document.getElementById("signing-key-id").textContent = key.id;
      document.getElementById("signing-key-private").textContent = key.private_key;
      reveal.hidden = false;
      reveal.scrollIntoView({ block: "nearest" });
      error.hidden = true;
      await refresh();
    } catch (err) {
      showError(error, err);
    }
  });
  document.getElementById("signing-key-done").addEventListener("click", () => {
    // Forget the private key: it is kept nowhere in the page once dismissed.
    document.getElementById("signing-key-private").textContent = "";
    reveal.hidden = true;
  });
  refresh();
}
