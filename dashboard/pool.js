// The worker pool and the ingest nodes, polled: load, breaker state, heartbeat age, queue
// depth, throughput (from the processed counter between polls), latency and error rate.

import { getJSON } from "./api.js";
import { cell, el, fillBody } from "./dom.js";
import { age, bytes, millis, percent, plural } from "./format.js";

/**
 * Rates of a cumulative counter per key, from the difference between two readings. A counter
 * that went down (the worker restarted: a new boot) starts over instead of going negative.
 */
export class CounterRates {
  constructor() {
    this.last = new Map();
  }

  /** The rate per second since the previous reading of `key`, or null for a first reading. */
  observe(key, boot, value, atMs) {
    const previous = this.last.get(key);
    this.last.set(key, { boot, value, atMs });
    if (!previous || previous.boot !== boot || value < previous.value || atMs <= previous.atMs) {
      return null;
    }
    return (value - previous.value) / ((atMs - previous.atMs) / 1000);
  }

  forgetExcept(keys) {
    for (const key of [...this.last.keys()]) if (!keys.has(key)) this.last.delete(key);
  }
}

/** Failed and timed-out batches among all this boot's settled ones (data errors excluded:
 *  the balancer does not blame a worker for a corrupt batch either). */
export function errorRate(load) {
  const failed = (load.batches_failed || 0) + (load.batches_timed_out || 0);
  const settled = failed + (load.batches_ok || 0);
  return settled ? failed / settled : null;
}

const rates = new CounterRates();
const lastRate = new Map();

function breakerCell(breaker) {
  if (!breaker) return cell("—", "breaker-unknown");
  const state = breaker.state.replace("_", "-");
  const td = cell(`${state} · ${percent(breaker.failure_rate)}`, "breaker-" + state);
  td.title = `${breaker.failures} failures of ${breaker.calls} recent batches`;
  return td;
}

function gpuText(load) {
  if (!load.gpu_name) return "—";
  const memory = load.gpu_memory_total_bytes
    ? ` ${bytes(load.gpu_memory_used_bytes)}/${bytes(load.gpu_memory_total_bytes)}` : "";
  const used = load.gpu_utilisation_percent === null ? "" : ` ${load.gpu_utilisation_percent}%`;
  return `${load.gpu_name}${used}${memory}`;
}

function workerRow(worker, throughput) {
  const load = worker.load || {};
  const liveness = worker.liveness || "—";
  const rate = errorRate(load);
  const errors = cell(percent(rate), rate > 0 ? "errors errors-some" : "errors");
  errors.title = `${load.batches_failed || 0} failed, ${load.batches_timed_out || 0} timed out,`
    + ` ${load.batches_data_errors || 0} data errors, ${load.batches_ok || 0} ok`;
  const heartbeat = cell(worker.heartbeat_age_s.toFixed(1) + " s", "heartbeat");
  if (worker.status !== "up") heartbeat.classList.add("stale");
  return el("tr", { dataset: { worker: worker.id } },
            cell(worker.id), cell(worker.status, "status-" + worker.status),
            cell(worker.worker_type), cell(liveness, "status-" + liveness), breakerCell(worker.breaker),
            cell(String(load.queue_depth ?? 0), "num queue"),
            cell(`${worker.in_flight} / ${load.max_jobs ?? 1}`, "num"),
            cell(throughput === null || throughput === undefined ? "—" : throughput.toFixed(1) + "/s",
                 "num throughput"),
            cell(String(worker.processed), "num"),
            cell(millis(worker.latency_ema_s), "num latency"),
            cell(millis(load.processing_ema_s), "num"),
            errors, cell(gpuText(load), "gpu"), heartbeat);
}

function summary(workers, throughputs) {
  const up = workers.filter((w) => w.status === "up").length;
  const open = workers.filter((w) => w.breaker && w.breaker.state !== "closed").length;
  // A dead worker's last heartbeat says nothing about its queue now.
  const queued = workers.filter((w) => w.status !== "down")
    .reduce((sum, w) => sum + ((w.load || {}).queue_depth || 0), 0);
  const total = throughputs.reduce((sum, t) => sum + (t || 0), 0);
  return `${up} of ${plural(workers.length, "worker")} up · `
    + `${plural(open, "breaker")} not closed · ${plural(queued, "batch", "batches")} queued · `
    + `${total.toFixed(1)} batches/s`;
}

export async function loadWorkers() {
  const workers = await getJSON("/api/workers");
  const throughputs = workers.map((w) => {
    if (w.status !== "up") return null;
    // Timed by the worker's own heartbeats; between two polls that saw the same beat, the
    // last rate measured stands.
    const measured = rates.observe(w.id, w.boot_id, w.processed, Date.parse(w.last_heartbeat_at));
    if (measured !== null) lastRate.set(w.id, measured);
    return lastRate.get(w.id) ?? null;
  });
  rates.forgetExcept(new Set(workers.map((w) => w.id)));
  fillBody(document.querySelector("#workers tbody"),
           workers.map((w, i) => workerRow(w, throughputs[i])), "No workers seen yet.");
  document.getElementById("pool-summary").textContent = summary(workers, throughputs);
}

export async function loadIngestNodes() {
  const nodes = await getJSON("/api/ingest/nodes");
  const rows = nodes.map((n) => el("tr", { dataset: { node: n.id } },
    cell(n.id), cell(n.alive ? "yes" : "no", n.alive ? "alive-yes" : "alive-no"),
    cell(n.draining ? "yes" : "no"), cell(n.cameras + " / " + n.capacity),
    cell(n.camera_ids.join(", ") || "—")));
  fillBody(document.querySelector("#ingest-nodes tbody"), rows, "No ingest nodes seen yet.");
}

/** The balancer, capacity and the frame queues as the broker counts them (GET /api/fleet). */
export async function loadFleet() {
  const fleet = await getJSON("/api/fleet");
  const balancer = fleet.balancer.active_id
    ? `balancer ${fleet.balancer.active_id} (judged ${age(fleet.balancer.last_judged_at)} ago)`
    : "no balancer has judged a worker yet";
  document.getElementById("fleet-summary").textContent =
    `${balancer} · capacity ${fleet.capacity_per_s.toFixed(1)} batches/s · ` +
    `${fleet.processed} batches ok, ${fleet.failed} failed`;
  const note = document.getElementById("queues-note");
  note.textContent = fleet.queues === null
    ? (fleet.queues_error || "Queue depths need the broker's management API (RABBITMQ_MANAGEMENT_URL).")
    : "";
  const rows = (fleet.queues || []).map((q) => el("tr", { dataset: { queue: q.name } },
    cell(q.name), cell(String(q.ready), q.ready > 0 && q.name.endsWith(".dead") ? "num stale" : "num"),
    cell(String(q.unacked), "num"), cell(String(q.consumers), "num")));
  fillBody(document.querySelector("#queues tbody"), rows, "No frame queues reported.");
}
