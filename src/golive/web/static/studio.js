// Entry point of the studio's pages (/studio, /studio/streams/ID).
import { bindCopyButtons } from "/static/studio-api.js";
import { startAuditTable } from "/static/studio-audit.js";
import { startSigningKeys } from "/static/studio-keys.js";
import { startStreamList } from "/static/studio-streams.js";
import { startStreamPage } from "/static/studio-stream.js";

bindCopyButtons();
const page = document.querySelector("main[data-page]")?.dataset.page;
if (page === "streams") {
  startStreamList();
  startSigningKeys();
  startAuditTable();
}
if (page === "stream") startStreamPage();
