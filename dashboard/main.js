// The dashboard's entry: the key, the views (tabs), the live channel and the polls.
//
// Plain ES modules, no build step, one concept each: api.js (key, requests, errors),
// live.js (WebSocket with tickets and resume; sequence.js dedupes events), cameras.js (live
// counts and minute charts), pool.js (workers, queues, ingest nodes), alerts.js, register.js
// (camera form), editor.js over shapes.js (line/zone drawing and its model), reports.js,
// charts.js (hand-drawn SVG), dom.js and format.js. Pure parts are tested in Chromium by
// tests/e2e/test_dashboard_modules.py.

import { ApiError, forgetKey, getJSON, onUnauthorized, setKey, storedKey,
  takeKeyFromLink } from "./api.js";
import { applyAlert, loadAlerts, startAlerts } from "./alerts.js";
import { applyCounts, loadCameras } from "./cameras.js";
import { startEditor } from "./editor.js";
import { startLive } from "./live.js";
import { every } from "./poll.js";
import { loadFleet, loadIngestNodes, loadWorkers } from "./pool.js";
import { startRegistration } from "./register.js";
import { startReports } from "./reports.js";

const VIEWS = ["live", "alerts", "cameras-setup", "reports"];

function setConnection(stateName, text) {
  const badge = document.getElementById("connection");
  badge.textContent = text;
  badge.dataset.state = stateName;
}

function askForKey(reason) {
  document.getElementById("views").hidden = true;
  document.getElementById("tabs").hidden = true;
  document.getElementById("key-reason").textContent = reason;
  document.getElementById("key-prompt").hidden = false;
  setConnection("down", "no key");
  document.getElementById("key-input").focus();
}

function showView() {
  const wanted = location.hash.slice(1);
  const view = VIEWS.includes(wanted) ? wanted : "live";
  for (const panel of document.querySelectorAll("main > section[data-view]")) {
    panel.hidden = panel.dataset.view !== view;
  }
  for (const link of document.querySelectorAll("#tabs a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function boot() {
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setKey(document.getElementById("key-input").value);
    location.reload();
  });
  document.getElementById("change-key").addEventListener("click", () => {
    forgetKey();
    askForKey("Paste the API key to use instead.");
  });
  takeKeyFromLink();
  onUnauthorized((detail) => {
    askForKey(`The API refused the key${detail ? ": " + detail : ""}. Paste a valid one.`);
  });
  if (!storedKey()) {
    askForKey("This dashboard needs an API key (ask an administrator for one).");
    return;
  }
  let me;
  try {
    me = await getJSON("/api/me");
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      setConnection("down", "error: " + error.message);
    }
    return;
  }
  document.body.dataset.role = me.role;
  document.getElementById("who").textContent =
    `${me.role} · ${me.site === "*" ? "every site" : "site " + me.site}`;
  document.getElementById("change-key").hidden = false;
  document.getElementById("tabs").hidden = false;
  document.getElementById("views").hidden = false;
  window.addEventListener("hashchange", showView);
  showView();

  await loadCameras();
  startLive({
    counts: applyCounts,
    alert: applyAlert,
    state: setConnection,
    resumed: () => {
      loadCameras({ missed: true }).catch(console.warn);
      loadAlerts().catch(console.warn);
    },
  });
  every(2000, loadWorkers);
  every(2000, loadIngestNodes);
  every(5000, loadFleet);
  // Counts arrive over the WebSocket; this poll refreshes camera status, ages and charts.
  setTimeout(() => every(5000, loadCameras), 5000);
  startAlerts(me);
  startRegistration(me);
  startEditor(me);
  startReports();
}

boot().catch((error) => setConnection("down", "error: " + error.message));
