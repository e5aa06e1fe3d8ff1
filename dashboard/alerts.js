// Alerts: the open ones (live over the WebSocket, from an initial GET), acknowledged from the
// page by an operator; the resolved history; the rules and a form for a new one.

import { ApiError, getJSON, sendJSON } from "./api.js";
import { cameraList, onCamerasChanged } from "./cameras.js";
import { cell, el, fillBody, say } from "./dom.js";
import { age, dateTime, toMs } from "./format.js";
import { every } from "./poll.js";

const HISTORY_LIMIT = 50;
const open = new Map(); // alert id -> alert
let history = [];
let canAck = false;

/** An alert from the API or an AlertEvent from the WebSocket, in one shape. */
export function normalise(alert) {
  return {
    id: alert.id ?? alert.alert_id,
    rule_name: alert.rule_name ?? `rule ${alert.rule_id}`,
    kind: alert.kind ?? "",
    state: alert.state,
    subject: alert.subject,
    camera_id: alert.camera_id ?? null,
    message: alert.message,
    value: alert.value,
    threshold: alert.threshold,
    fired_at: toMs(alert.fired_at),
    at: toMs(alert.at ?? alert.resolved_at ?? alert.acknowledged_at ?? alert.fired_at),
    acknowledged_by: alert.acknowledged_by ?? null,
    acknowledged_at: alert.acknowledged_at ? toMs(alert.acknowledged_at) : null,
    resolved_at: alert.resolved_at ? toMs(alert.resolved_at)
      : alert.state === "resolved" ? toMs(alert.at) : null,
  };
}

function stateBadge(state) {
  return el("td", {}, el("span", { className: "badge alert-state", dataset: { state },
                                   textContent: state }));
}

async function acknowledge(alert, button) {
  button.disabled = true;
  try {
    const updated = normalise(await sendJSON("POST", `/api/alerts/${alert.id}/ack`));
    upsert(updated);
  } catch (error) {
    button.disabled = false;
    say(document.getElementById("alerts-status"), `Could not acknowledge: ${error.message}`,
        "error");
  }
}

function openRow(alert) {
  const action = el("td");
  if (alert.state === "firing" && canAck) {
    const button = el("button", { type: "button", textContent: "Acknowledge",
                                  className: "ack", attrs: { "aria-label":
                                    `acknowledge ${alert.rule_name} on ${alert.subject}` } });
    button.addEventListener("click", () => acknowledge(alert, button));
    action.append(button);
  } else if (alert.state === "acknowledged") {
    action.textContent = alert.acknowledged_by ? `by ${alert.acknowledged_by}` : "";
  }
  const fired = cell(age(alert.fired_at), "fired");
  fired.title = dateTime(alert.fired_at);
  return el("tr", { dataset: { alert: String(alert.id), state: alert.state } },
            stateBadge(alert.state),
            el("td", {}, el("strong", { textContent: alert.rule_name }),
               el("div", { className: "muted", textContent: alert.kind })),
            cell(alert.subject), cell(alert.message, "message"),
            cell(`${alert.value} / ${alert.threshold}`, "num"), fired, action);
}

function historyRow(alert) {
  return el("tr", { dataset: { alert: String(alert.id), state: "resolved" } },
            cell(alert.rule_name), cell(alert.subject), cell(alert.message, "message"),
            cell(dateTime(alert.fired_at)),
            cell(alert.acknowledged_by ? `by ${alert.acknowledged_by}` : "—"),
            cell(alert.resolved_at ? dateTime(alert.resolved_at) : "—"));
}

function render() {
  const sorted = [...open.values()].sort((a, b) => b.fired_at - a.fired_at);
  fillBody(document.querySelector("#alerts-open tbody"), sorted.map(openRow), "No open alerts.");
  fillBody(document.querySelector("#alerts-history tbody"), history.map(historyRow),
           "Nothing resolved yet.");
  const firing = sorted.filter((a) => a.state === "firing").length;
  const count = document.getElementById("alerts-count");
  count.textContent = firing ? String(firing) : "";
  count.title = firing ? `${firing} firing` : "";
}

function upsert(changed) {
  // An acknowledgement or resolution event describes that change in its message; the table
  // keeps saying why the alert fired (as the API does).
  const known = open.get(changed.id);
  const alert = known && changed.state !== "firing"
    ? { ...changed, message: known.message, value: known.value, fired_at: known.fired_at }
    : changed;
  if (alert.state === "resolved") {
    open.delete(alert.id);
    history = [alert, ...history.filter((a) => a.id !== alert.id)].slice(0, HISTORY_LIMIT);
  } else {
    open.set(alert.id, alert);
  }
  render();
}

/** An AlertEvent from the live channel. */
export function applyAlert(event) {
  upsert(normalise(event));
}

export async function loadAlerts() {
  const [opened, resolved] = await Promise.all(["open", "resolved"].map((state) =>
    getJSON(`/api/alerts?state=${state}&limit=${state === "open" ? 500 : HISTORY_LIMIT}`)));
  open.clear();
  for (const alert of opened) open.set(alert.id, normalise(alert));
  history = resolved.map(normalise);
  render();
}

function ruleRow(rule) {
  const scope = rule.camera_id ? `camera ${rule.camera_id}` : rule.site ? `site ${rule.site}`
    : "fleet";
  return el("tr", { dataset: { rule: String(rule.id) } },
            cell(rule.name), cell(rule.kind), cell(scope), cell(String(rule.threshold), "num"),
            cell(`${rule.for_s} s`, "num"), cell(`${rule.cooldown_s} s`, "num"),
            cell(rule.enabled ? "yes" : "no"));
}

async function loadRules() {
  const rules = await getJSON("/api/alert-rules");
  fillBody(document.querySelector("#alert-rules tbody"), rules.map(ruleRow), "No rules yet.");
}

const ruleForm = () => document.getElementById("rule-form");

/** Show the inputs that apply to the chosen kind; hidden ones are not sent. */
function showKindFields() {
  const kind = ruleForm().elements.namedItem("kind").value;
  for (const label of ruleForm().querySelectorAll("[data-for-kinds]")) {
    label.hidden = !label.dataset.forKinds.split(" ").includes(kind);
  }
}

function fillCameraChoices(cameras) {
  const select = ruleForm().elements.namedItem("camera_id");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "", textContent: "every camera" }),
    ...cameras.map((c) => el("option", { value: c.id, textContent: `${c.name} (${c.id})` })));
  select.value = cameras.some((c) => c.id === chosen) ? chosen : "";
  fillZoneChoices();
}

function fillZoneChoices() {
  const form = ruleForm();
  const camera = cameraList().find((c) => c.id === form.elements.namedItem("camera_id").value);
  form.elements.namedItem("zone_id").replaceChildren(
    ...(camera?.zones || []).map((z) => el("option", { value: String(z.id), textContent: z.name })));
}

function ruleBody() {
  const form = ruleForm();
  const value = (name) => form.elements.namedItem(name).value.trim();
  const visible = (name) => !form.elements.namedItem(name).closest("label").hidden;
  const kind = value("kind");
  const params = {};
  if (visible("window_s")) params.window_s = Number(value("window_s"));
  if (visible("zone_id") && value("zone_id")) params.zone_id = Number(value("zone_id"));
  if (visible("queue") && value("queue")) params.queue = value("queue");
  const body = { name: value("name"), kind, for_s: Number(value("for_s")),
                 cooldown_s: Number(value("cooldown_s")), params };
  // camera_status and worker_down are conditions: their threshold is fixed, not sent.
  if (visible("threshold")) body.threshold = Number(value("threshold"));
  if (visible("camera_id") && value("camera_id")) body.camera_id = value("camera_id");
  return body;
}

async function addRule(event) {
  event.preventDefault();
  const status = document.getElementById("rule-status");
  try {
    const rule = await sendJSON("POST", "/api/alert-rules", ruleBody());
    say(status, `Rule “${rule.name}” added.`, "ok");
    await loadRules();
  } catch (error) {
    const text = error instanceof ApiError && error.status === 422
      ? [...error.fieldErrors()].map(([field, m]) => `${field}: ${m.join("; ")}`).join(" ")
      : error.message;
    say(status, text, "error");
  }
}

export function startAlerts(me) {
  canAck = me.role !== "viewer";
  const form = ruleForm();
  form.elements.namedItem("kind").addEventListener("change", showKindFields);
  form.elements.namedItem("camera_id").addEventListener("change", fillZoneChoices);
  form.addEventListener("submit", addRule);
  showKindFields();
  fillCameraChoices(cameraList());
  onCamerasChanged(fillCameraChoices);
  const status = document.getElementById("alerts-status");
  // The live channel brings changes; this slow poll heals anything a reconnect missed.
  every(30000, async () => {
    try {
      await Promise.all([loadAlerts(), loadRules()]);
      say(status, "");
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) {
        say(status, `Alerts unavailable: ${error.message}`, "error");
      }
      throw error;
    }
  });
}
