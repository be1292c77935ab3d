// Preflight on a stream's studio page: open a session, tell the operator to publish, poll
// until golive answers go / no-go, and show every check with its value, threshold and fix.
import { api, showError } from "/static/studio-api.js";

const POLL_MS = 1000;
const FINAL = new Set(["done", "failed", "expired"]);

export function startPreflight(path, $) {
  const button = $("preflight-start");
  const state = $("preflight-state");
  const table = $("preflight-checks");
  const error = $("preflight-error");

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (className) td.className = className;
    return td;
  }

  function render(session) {
    if (session.status === "waiting") {
      state.textContent = `Waiting: publish ${session.duration} s of the real scene to this stream's ingest URL with its stream key. It stays off the air.`;
    } else if (session.status === "capturing" || session.status === "analyzing") {
      state.textContent = `${session.status === "capturing" ? "Measuring" : "Analysing"}…`;
    } else if (session.status === "done") {
      state.textContent = `${session.verdict === "go" ? "GO" : "NO-GO"} — ${session.media_seconds} s measured against ${session.profile}`;
    } else {
      state.textContent = `Preflight ${session.status}: ${session.error || ""}`;
    }
    state.dataset.verdict = session.verdict || session.status;
    const rows = (session.checks || []).map((check) => {
      const tr = document.createElement("tr");
      tr.className = `preflight-${check.status}`;
      tr.dataset.check = check.name;
      tr.append(cell(check.name.replaceAll("_", " ")), cell(check.status.toUpperCase(), "preflight-result"),
        cell(check.measured), cell(check.threshold), cell(check.fix));
      return tr;
    });
    table.tBodies[0].replaceChildren(...rows);
    table.hidden = rows.length === 0;
  }

  async function follow(session) {
    render(session);
    while (!FINAL.has(session.status)) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      session = (await api("GET", `${path}/preflights/${encodeURIComponent(session.id)}`)).data;
      render(session);
    }
  }

  button.addEventListener("click", async () => {
    error.hidden = true;
    button.disabled = true;
    try {
      const duration = Number($("preflight-duration").value) || 10;
      await follow((await api("POST", `${path}/preflight`, { duration })).data);
    } catch (err) {
      showError(error, err);
    } finally {
      button.disabled = false;
    }
  });
}
