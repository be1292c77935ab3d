// The studio's audit log table: the newest changes (GET /api/v1/audit through the studio).
import { api, formatTime, showError } from "/static/studio-api.js";

const SHOWN = 50;

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text ?? "–";
  if (className) td.className = className;
  return td;
}

export function startAuditTable() {
  const rows = document.getElementById("audit-rows");
  const error = document.getElementById("audit-error");
  const button = document.getElementById("audit-refresh");

  function render(entries) {
    if (!entries.length) {
      const tr = document.createElement("tr");
      const td = cell("No changes recorded yet.", "muted");
      td.colSpan = 5;
      tr.append(td);
      rows.replaceChildren(tr);
      return;
    }
    rows.replaceChildren(...entries.map((entry) => {
      const tr = document.createElement("tr");
      tr.dataset.id = String(entry.id);
      const who = entry.actor.type === "studio" ? `${entry.actor.name} (studio)` : entry.actor.name;
      const target = entry.target.id ? `${entry.target.type} ${entry.target.id}` : entry.target.type;
      tr.append(cell(formatTime(entry.at)), cell(who), cell(entry.remote_address),
                cell(entry.action, "audit-action"), cell(target));
      return tr;
    }));
  }

  async function refresh() {
    try {
      const body = await api("GET", `audit?limit=${SHOWN}`);
      render(body.data);
      error.hidden = true;
    } catch (err) {
      showError(error, err);
    }
  }

  button.addEventListener("click", refresh);
  refresh();
}
