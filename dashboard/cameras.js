// The live view of cameras: status, counts per line (in/out) and zone occupancy, and a chart
// of crossings per minute over the last hour; loaded from the API, then kept live by updates.

import { getJSON, serverNowMs } from "./api.js";
import { MinuteSeries, minuteBars } from "./charts.js";
import { cell, el, fillBody } from "./dom.js";
import { age, clock, dateTime } from "./format.js";

const entries = new Map(); // camera id -> {camera, series, lastSeq, updated, flash}
const listeners = new Set();
let chartQueue = Promise.resolve();

export function cameraList() {
  return [...entries.values()].map((entry) => entry.camera);
}

export function onCamerasChanged(listener) {
  listeners.add(listener);
}

function sumTotals(totals, prefix, direction) {
  let sum = 0;
  const parts = [];
  for (const [key, value] of Object.entries(totals || {})) {
    const [id, dir, objectClass] = key.split(":");
    if (id === prefix && dir === direction) {
      sum += value;
      parts.push(`${objectClass}: ${value}`);
    }
  }
  return { sum, title: parts.join(", ") };
}

function occupancyOf(occupancy, zoneId) {
  let inside = 0;
  for (const [key, value] of Object.entries(occupancy || {})) {
    if (key.split(":")[0] === String(zoneId)) inside += value;
  }
  return inside;
}

function statusCell(status) {
  const badge = el("span", { className: "badge camera-status", dataset: { status: status.status },
                             textContent: status.status.replace("_", " ") });
  return el("td", {}, badge, el("div", { className: "reason", textContent: status.reason || "" }));
}

function cameraCells(entry, rowSpan) {
  const { camera } = entry;
  const status = camera.status;
  const since = el("td", { className: "since", textContent: age(status.since),
                           title: dateTime(status.since) });
  // A status written by a node that has since died is stale: say so next to the node.
  const dead = status.node_id && status.node_alive === false;
  const node = cell(status.node_id ? status.node_id + (dead ? " (dead)" : "") : "—",
                    dead ? "node node-dead" : "node");
  const name = el("td", { className: "camera-name" },
                  el("strong", { textContent: camera.name }),
                  el("div", { className: "muted", textContent: `${camera.id} · ${camera.region}` }));
  const chart = el("td", { className: "chart" });
  const points = entry.series.points(serverNowMs());
  const total = points.reduce((sum, p) => sum + p.count, 0);
  const gaps = points.filter((p) => p.gap).length;
  chart.append(minuteBars(points, {
    label: `${total} crossings in the last hour` + (gaps ? `, ${gaps} min without coverage` : ""),
  }));
  const updated = cell(entry.updated ? clock(entry.updated) : "—", "updated");
  const cells = [name, statusCell(status), since, node, chart];
  for (const td of [...cells, updated]) td.rowSpan = rowSpan;
  return { first: cells, last: updated };
}

function countCell(totals, id, direction, flash) {
  const { sum, title } = sumTotals(totals, String(id), direction);
  const td = el("td", { className: flash ? "count flash" : "count", textContent: String(sum),
                        title, dataset: { direction } });
  return td;
}

function cameraBody(entry) {
  const { camera } = entry;
  const rows = [];
  const lines = camera.lines.length || camera.zones.length
    ? camera.lines : [{ id: -1, name: "(no line)", version: 0 }];
  for (const line of lines) {
    const flash = entry.flash.has(String(line.id));
    const label = line.id < 0 ? line.name : `↦ ${line.name} v${line.version}`;
    rows.push(el("tr", { dataset: { camera: camera.id, line: String(line.id) } },
                 cell(label, "line-name"), countCell(camera.totals, line.id, "in", flash),
                 countCell(camera.totals, line.id, "out", flash)));
  }
  for (const zone of camera.zones) {
    const inside = el("td", { className: "count occupancy", colSpan: 2,
                              textContent: `${occupancyOf(camera.occupancy, zone.id)} inside` });
    rows.push(el("tr", { dataset: { camera: camera.id, zone: String(zone.id) } },
                 cell(`▱ ${zone.name} v${zone.version}`, "line-name"), inside));
  }
  const { first, last } = cameraCells(entry, rows.length);
  rows[0].prepend(...first);
  rows[0].append(last);
  entry.flash.clear();
  return el("tbody", { dataset: { camera: camera.id } }, ...rows);
}

function renderAll() {
  const table = document.getElementById("cameras");
  table.querySelectorAll("tbody").forEach((body) => body.remove());
  if (!entries.size) {
    const body = el("tbody");
    table.append(body);
    fillBody(body, [], "No cameras registered yet.");
    return;
  }
  table.append(...[...entries.values()].map(cameraBody));
}

function renderOne(entry) {
  const old = document.querySelector(`#cameras tbody[data-camera="${CSS.escape(entry.camera.id)}"]`);
  if (old) old.replaceWith(cameraBody(entry));
  else renderAll();
}

// Charts load one camera at a time: a fleet must not burst through the key's rate limit.
function loadChart(entry) {
  chartQueue = chartQueue.then(async () => {
    if (entries.get(entry.camera.id) !== entry) return;
    entry.series.beginLoad();
    const counts = await getJSON(
      `/api/cameras/${encodeURIComponent(entry.camera.id)}/counts?minutes=${entry.series.minutes}`);
    const gaps = counts.gaps.map((gap) => ({
      startMs: Date.parse(gap.started_at || gap.recorded_at),
      endMs: gap.ended_at ? Date.parse(gap.ended_at)
        : gap.seq_from === null ? null : Date.parse(gap.started_at || gap.recorded_at),
    }));
    entry.series.load(counts.buckets, gaps);
    renderOne(entry);
  }).catch((error) => {
    entry.series.cancelLoad();
    console.warn("chart", entry.camera.id, error);
  });
}

/**
 * Load (or re-poll) the cameras. Once live updates arrive, a camera's totals come from them:
 * a poll may be older. After events were missed (`missed`), the API's totals win again.
 */
export async function loadCameras({ missed = false } = {}) {
  const cameras = await getJSON("/api/cameras?limit=500");
  const seen = new Set();
  for (const camera of cameras) {
    seen.add(camera.id);
    const known = entries.get(camera.id);
    if (known) {
      if (missed) known.lastSeq = null;
      const { totals, occupancy } = known.lastSeq !== null ? known.camera : camera;
      known.camera = { ...camera, totals, occupancy };
      if (missed) loadChart(known);
    } else {
      const entry = { camera, series: new MinuteSeries(60), lastSeq: null, updated: null,
                      flash: new Set() };
      entries.set(camera.id, entry);
      loadChart(entry);
    }
  }
  for (const id of [...entries.keys()]) if (!seen.has(id)) entries.delete(id);
  renderAll();
  listeners.forEach((listener) => listener(cameraList()));
}

let reloadPending = null;

export function applyCounts(update) {
  const entry = entries.get(update.camera_id);
  if (!entry) {
    // A camera registered since the last load (or by someone else): fetch it once.
    reloadPending ??= loadCameras().finally(() => { reloadPending = null; });
    return;
  }
  let crossed = 0;
  for (const [key, n] of Object.entries(update.delta || {})) {
    crossed += n;
    entry.flash.add(key.split(":")[0]);
  }
  if (crossed) entry.series.add(update.captured_at * 1000, crossed);
  if (entry.lastSeq === null || update.event_seq > entry.lastSeq) {
    entry.lastSeq = update.event_seq;
    entry.camera = { ...entry.camera, totals: update.totals,
                     occupancy: update.occupancy || entry.camera.occupancy };
    entry.updated = update.committed_at;
  }
  renderOne(entry);
}
