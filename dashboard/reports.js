// Reports: counts per bucket for a camera and a range, grouped as asked; a chart and a table
// where a bucket nobody watched reads "no data" (hatched), never 0; a CSV download.

import { ApiError, getJSON, request } from "./api.js";
import { cameraList, onCamerasChanged } from "./cameras.js";
import { legend, seriesChart } from "./charts.js";
import { cell, el, say } from "./dom.js";
import { bucketTime } from "./format.js";

const form = () => document.getElementById("report-form");
let lastQuery = null; // the query string of the report shown, for its CSV

function localInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

/** The query string of the form's report (format added by the caller). */
export function reportQuery(fields) {
  const params = new URLSearchParams();
  if (fields.camera) params.set("camera", fields.camera); // none: every camera the key sees
  params.set("from", new Date(fields.from).toISOString());
  params.set("to", new Date(fields.to).toISOString());
  params.set("bucket", fields.bucket);
  if (fields.group_by.length) params.set("group_by", fields.group_by.join(","));
  params.set("tz", Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC");
  return params;
}

function fields() {
  const f = form();
  return {
    camera: f.elements.namedItem("camera").value,
    from: f.elements.namedItem("from").value,
    to: f.elements.namedItem("to").value,
    bucket: f.elements.namedItem("bucket").value,
    group_by: [...f.querySelectorAll("input[name=group_by]:checked")].map((i) => i.value),
  };
}

function renderTable(report, buckets, series) {
  const table = document.getElementById("report-table");
  const head = el("tr", {}, el("th", { textContent: "Bucket" }),
                  ...series.map((s) => el("th", { className: "num", textContent: s.name })),
                  el("th", { textContent: "Coverage" }));
  table.querySelector("thead").replaceChildren(head);
  const rows = buckets.map((bucket, i) => {
    const covered = report.coverage[i];
    const row = el("tr", { dataset: { bucket: String(i), coverage: String(covered) } },
                   cell(bucketTime(new Date(bucket.start))));
    for (const one of series) {
      const value = one.values[i];
      row.append(value === null ? cell("no data", "num gap") : cell(String(value), "num"));
    }
    const gapCell = cell(covered === null ? "—" : `${Math.round(covered * 100)} %`,
                         covered < 1 ? "num gap" : "num");
    row.append(gapCell);
    return row;
  });
  table.querySelector("tbody").replaceChildren(...rows);
}

const DIMENSIONS = ["camera_id", "line", "zone", "object_class", "direction"];

/**
 * GET /api/reports (JSON) as the chart and table take it. The API gives one row per series and
 * bucket ({start, end, line, object_class, direction, count|null, coverage}); here the rows are
 * pivoted into buckets (with their coverage) and named series of values (null: no data).
 */
export function readReport(report) {
  const rows = report.crossings || [];
  const buckets = [];
  const bucketIndex = new Map();
  const coverage = [];
  const series = new Map();
  for (const row of rows) {
    if (!bucketIndex.has(row.start)) {
      bucketIndex.set(row.start, buckets.length);
      buckets.push({ start: Date.parse(row.start), end: Date.parse(row.end) });
      coverage.push(row.coverage);
    }
    const i = bucketIndex.get(row.start);
    // Several series watch a bucket alike (one camera); the least covered one decides.
    coverage[i] = Math.min(coverage[i], row.coverage);
    const parts = DIMENSIONS.filter((d) => row[d] !== null && row[d] !== undefined)
      .filter((d) => d !== "camera_id" || (report.cameras || []).length > 1)
      .map((d) => String(row[d]));
    const name = parts.length ? parts.join(" · ") : "all crossings";
    if (!series.has(name)) series.set(name, { name, values: [] });
    series.get(name).values[i] = row.count;
  }
  const named = [...series.values()].map((one) => ({
    name: one.name, values: buckets.map((_, i) => one.values[i] ?? null),
  }));
  return { buckets, coverage, series: named, gaps: report.gaps || [] };
}

/** The recorded gaps behind the hatching, with their reasons. */
function gapList(gaps) {
  const items = gaps.map((gap) => el("li", { textContent:
    `${gap.camera_id}: ${gap.reason.replace("_", " ")} from ${bucketTime(gap.started_at)}` +
    ` to ${gap.ended_at ? bucketTime(gap.ended_at) : "now"}` +
    (gap.approximate ? " (placed from its batches)" : "") + (gap.detail ? ` — ${gap.detail}` : "") }));
  return el("ul", { className: "report-gaps", attrs: { "aria-label": "coverage gaps" } }, ...items);
}

async function show(event) {
  event?.preventDefault();
  const status = document.getElementById("report-status");
  const query = reportQuery(fields());
  say(status, "Loading…");
  try {
    const report = readReport(await getJSON(`/api/reports?${query}&format=json`));
    lastQuery = query;
    const gapSwatch = el("li", {}, el("span", { className: "swatch gap-swatch" }), "no coverage");
    const key = legend(report.series);
    key.append(gapSwatch);
    document.getElementById("report-chart").replaceChildren(
      seriesChart(report.buckets, report.series, report.coverage), key, gapList(report.gaps));
    renderTable(report, report.buckets, report.series);
    const missing = report.coverage.filter((c) => c !== null && c < 1).length;
    say(status, `${report.buckets.length} buckets, ${report.series.length} series` +
        (missing ? `; ${missing} without full coverage (hatched)` : ""), "ok");
    document.getElementById("report-csv").disabled = false;
  } catch (error) {
    const text = error instanceof ApiError && error.status === 422
      ? [...error.fieldErrors()].map(([field, m]) => `${field}: ${m.join("; ")}`).join(" ")
      : error.message;
    say(status, text, "error");
  }
}

// A link cannot carry the Authorization header: fetch the CSV, then save it as a blob, under
// the name the API gives it.
async function downloadCsv() {
  if (!lastQuery) return;
  try {
    const response = await request("GET", `/api/reports?${lastQuery}&format=csv`,
                                   { accept: "text/csv" });
    const named = /filename="?([^";]+)"?/.exec(response.headers.get("Content-Disposition") || "");
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url,
                           download: named ? named[1] : "camcount-report.csv" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (error) {
    say(document.getElementById("report-status"), `CSV: ${error.message}`, "error");
  }
}

function fillCameras(cameras) {
  const select = form().elements.namedItem("camera");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "", textContent: "every camera" }),
    ...cameras.map((c) => el("option", { value: c.id, textContent: `${c.name} (${c.id})` })));
  if (cameras.some((c) => c.id === chosen)) select.value = chosen;
}

export function startReports() {
  const f = form();
  const now = Date.now();
  f.elements.namedItem("to").value = localInput(now - (now % 60000) + 60000);
  f.elements.namedItem("from").value = localInput(now - (now % 60000) - 24 * 3600000);
  f.addEventListener("submit", show);
  document.getElementById("report-csv").addEventListener("click", downloadCsv);
  fillCameras(cameraList());
  onCamerasChanged(fillCameras);
}
