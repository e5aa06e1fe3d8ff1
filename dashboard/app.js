// camcount dashboard: cameras with live counts (WebSocket), camera status, ingest nodes and
// worker pool (polled).
"use strict";

// serverOffsetMs: server clock minus this browser's, from the Date header, so that "since"
// ages are right even when the viewer's clock is off.
const state = { cameras: new Map(), lastSeq: null, ws: null, serverOffsetMs: 0 };

// The API key: from the link's fragment (#key=..., never sent to the server) on first load,
// then from this tab's session storage.
function apiKey() {
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("key");
  if (fromLink) {
    sessionStorage.setItem("camcount-key", fromLink);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("camcount-key") || "";
}

async function getJSON(path) {
  const response = await fetch(path, {
    headers: { Accept: "application/json", Authorization: `Bearer ${apiKey()}` },
  });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  const date = Date.parse(response.headers.get("Date") || "");
  if (!Number.isNaN(date)) state.serverOffsetMs = date - Date.now();
  return response.json();
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function age(isoTime) {
  const seconds = Math.max(0, (Date.now() + state.serverOffsetMs - Date.parse(isoTime)) / 1000);
  if (seconds < 90) return Math.round(seconds) + " s";
  if (seconds < 90 * 60) return Math.round(seconds / 60) + " min";
  if (seconds < 36 * 3600) return Math.round(seconds / 3600) + " h";
  return Math.round(seconds / 86400) + " d";
}

function statusCells(status) {
  const badge = document.createElement("span");
  badge.className = "badge camera-status";
  badge.dataset.status = status.status;
  badge.textContent = status.status.replace("_", " ");
  const statusCell = cell("");
  statusCell.append(badge);
  const since = cell(age(status.since), "since");
  since.title = new Date(status.since).toLocaleString();
  // A status written by a node that has since died is stale: say so next to the node.
  const dead = status.node_id && status.node_alive === false;
  const node = cell(status.node_id ? status.node_id + (dead ? " (dead)" : "") : "—",
                    dead ? "node node-dead" : "node");
  return [statusCell, cell(status.reason || "—", "reason"), since, node];
}

function total(totals, lineId, direction) {
  let sum = 0;
  for (const [key, value] of Object.entries(totals || {})) {
    const [line, dir] = key.split(":");
    if (Number(line) === lineId && dir === direction) sum += value;
  }
  return sum;
}

function renderCameras() {
  const body = document.querySelector("#cameras tbody");
  body.replaceChildren();
  if (state.cameras.size === 0) {
    const row = document.createElement("tr");
    row.className = "empty";
    row.append(cell("No cameras registered yet."));
    row.firstChild.colSpan = 10;
    body.append(row);
    return;
  }
  for (const camera of state.cameras.values()) {
    const lines = camera.lines.length ? camera.lines : [{ id: -1, name: "(no line)" }];
    for (const line of lines) {
      const row = document.createElement("tr");
      row.dataset.camera = camera.id;
      row.dataset.line = String(line.id);
      const inCount = cell(String(total(camera.totals, line.id, "in")), "count");
      inCount.dataset.direction = "in";
      const outCount = cell(String(total(camera.totals, line.id, "out")), "count");
      outCount.dataset.direction = "out";
      row.append(cell(camera.name + " (" + camera.id + ")"), ...statusCells(camera.status),
                 cell(camera.region), cell(line.name), inCount, outCount,
                 cell(camera.updated || "—"));
      body.append(row);
    }
  }
}

function renderZones() {
  const body = document.querySelector("#zones tbody");
  body.replaceChildren();
  for (const camera of state.cameras.values()) {
    for (const zone of camera.zones || []) {
      let inside = 0;
      for (const [key, value] of Object.entries(camera.occupancy || {})) {
        if (Number(key.split(":")[0]) === zone.id) inside += value;
      }
      const row = document.createElement("tr");
      row.dataset.camera = camera.id;
      row.dataset.zone = String(zone.id);
      row.append(cell(camera.name + " (" + camera.id + ")"), cell(zone.name),
                 cell(String(inside), "count"));
      body.append(row);
    }
  }
  if (!body.children.length) {
    const row = document.createElement("tr");
    row.className = "empty";
    row.append(cell("No zones drawn yet."));
    row.firstChild.colSpan = 3;
    body.append(row);
  }
}

function applyUpdate(update) {
  if (state.lastSeq !== null && update.event_seq <= state.lastSeq) return; // replayed twice
  state.lastSeq = update.event_seq;
  const camera = state.cameras.get(update.camera_id);
  if (!camera) { loadCameras(); return; }
  camera.totals = update.totals;
  camera.occupancy = update.occupancy || camera.occupancy;
  camera.updated = new Date(update.committed_at * 1000).toLocaleTimeString();
  renderCameras();
  renderZones();
  if (Object.keys(update.delta).length) {
    document.querySelectorAll(`tr[data-camera="${CSS.escape(update.camera_id)}"] td.count`)
      .forEach((td) => td.classList.add("flash"));
  }
}

async function loadCameras() {
  const cameras = await getJSON("/api/cameras?limit=500");
  for (const camera of cameras) {
    const known = state.cameras.get(camera.id);
    state.cameras.set(camera.id, { ...camera, updated: known ? known.updated : null });
  }
  renderCameras();
  renderZones();
}

async function loadWorkers() {
  const workers = await getJSON("/api/workers");
  const body = document.querySelector("#workers tbody");
  body.replaceChildren();
  for (const w of workers) {
    const row = document.createElement("tr");
    // status: the registry's view from heartbeat age; liveness and breaker: the balancer's
    // verdicts (absent until a balancer has judged the worker).
    const liveness = w.liveness || "—";
    const breaker = w.breaker ? w.breaker.state.replace("_", "-") : "—";
    row.append(cell(w.id), cell(w.status, "status-" + w.status), cell(w.worker_type),
               cell(liveness, "status-" + liveness), cell(breaker, "breaker-" + breaker),
               cell(String(w.load ? w.load.queue_depth : 0)),
               cell(String(w.in_flight)), cell(String(w.processed)),
               cell((w.latency_ema_s * 1000).toFixed(0) + " ms"),
               cell(w.heartbeat_age_s.toFixed(1) + " s"));
    body.append(row);
  }
}

async function loadIngestNodes() {
  const nodes = await getJSON("/api/ingest/nodes");
  const body = document.querySelector("#ingest-nodes tbody");
  body.replaceChildren();
  for (const n of nodes) {
    const row = document.createElement("tr");
    row.dataset.node = n.id;
    row.append(cell(n.id), cell(n.alive ? "yes" : "no", n.alive ? "alive-yes" : "alive-no"),
               cell(n.draining ? "yes" : "no"), cell(n.cameras + " / " + n.capacity),
               cell(n.camera_ids.join(", ") || "—"));
    body.append(row);
  }
  if (!body.children.length) {
    const row = document.createElement("tr");
    row.className = "empty";
    row.append(cell("No ingest nodes seen yet."));
    row.firstChild.colSpan = 5;
    body.append(row);
  }
}

function setConnection(text, stateName) {
  const badge = document.getElementById("connection");
  badge.textContent = text;
  badge.dataset.state = stateName;
}

function connect(url, attempt) {
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.onopen = () => {
    setConnection("live", "live");
    const subscribe = { op: "subscribe", cameras: "*" };
    if (state.lastSeq !== null) subscribe.resume_from = state.lastSeq;
    ws.send(JSON.stringify(subscribe));
    attempt = 0;
  };
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "counts") applyUpdate(message);
  };
  ws.onclose = () => {
    setConnection("reconnecting…", "down");
    const delay = Math.min(10000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
    setTimeout(() => connect(url, attempt + 1), delay);
  };
}

async function main() {
  const config = await getJSON("/api/config");
  await loadCameras();
  connect(config.websocket_url, 0);
  await loadWorkers().catch(() => {});
  await loadIngestNodes().catch(() => {});
  setInterval(() => loadWorkers().catch(() => {}), 2000);
  setInterval(() => loadIngestNodes().catch(() => {}), 2000);
  // Counts also arrive over the WebSocket; this poll is what refreshes camera status.
  setInterval(() => loadCameras().catch(() => {}), 5000);
}

main().catch((error) => setConnection("error: " + error.message, "down"));
