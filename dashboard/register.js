// Registering a camera and changing one: a form whose refused fields show the API's own
// message next to them (422 detail[].loc names the field).

import { ApiError, sendJSON } from "./api.js";
import { cameraList, loadCameras, onCamerasChanged } from "./cameras.js";
import { el, say } from "./dom.js";
import { openEditor } from "./editor.js";
import { plural } from "./format.js";

const FIELDS = ["id", "name", "url", "site", "region", "priority", "target_fps", "capability",
                "enabled"];
const NUMBERS = new Set(["priority", "target_fps"]);
let editing = null; // the camera being changed, or null while registering a new one
let canWrite = false;

const form = () => document.getElementById("camera-form");
const input = (name) => form().elements.namedItem(name);

function values() {
  const body = {};
  for (const name of FIELDS) {
    const field = input(name);
    if (field.type === "checkbox") body[name] = field.checked;
    else if (NUMBERS.has(name)) body[name] = field.value === "" ? null : Number(field.value);
    else body[name] = field.value.trim();
  }
  if (!body.site) delete body.site;
  return body;
}

function clearErrors() {
  for (const node of form().querySelectorAll(".field-error[data-field]")) node.remove();
  for (const field of form().querySelectorAll("[aria-invalid]")) {
    field.removeAttribute("aria-invalid");
    field.removeAttribute("aria-describedby");
  }
  say(document.getElementById("cf-general-error"), "");
}

function showErrors(errors) {
  clearErrors();
  const general = [];
  let first = null;
  for (const [name, messages] of errors) {
    const field = FIELDS.includes(name) ? input(name) : null;
    if (!field) {
      general.push(...messages.map((m) => (name ? `${name}: ${m}` : m)));
      continue;
    }
    const id = `cf-${name}-error`;
    const note = el("p", { className: "field-error", id, textContent: messages.join("; "),
                           dataset: { field: name } });
    (field.type === "checkbox" ? field.parentElement : field).after(note);
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-describedby", id);
    first ??= field;
  }
  say(document.getElementById("cf-general-error"), general.join(" "), "error");
  first?.focus();
}

function errorsOf(error) {
  if (error instanceof ApiError && error.status === 422) return error.fieldErrors();
  if (error instanceof ApiError && error.status === 409) {
    return new Map([["id", [typeof error.detail === "string" ? error.detail
      : "a camera with this id exists already"]]]);
  }
  return new Map([["", [error.message]]]);
}

function fill(camera) {
  editing = camera;
  for (const name of FIELDS) {
    const field = input(name);
    const value = camera ? camera[name] : field.defaultValue;
    if (field.type === "checkbox") field.checked = camera ? Boolean(value) : field.defaultChecked;
    else if (field.tagName === "SELECT") field.value = camera ? String(value) : "1";
    else field.value = value ?? "";
  }
  input("id").readOnly = Boolean(camera);
  input("site").readOnly = Boolean(camera);
  document.getElementById("camera-form-title").textContent =
    camera ? `Camera ${camera.id}` : "Register a camera";
  document.getElementById("cf-submit").textContent = camera ? "Save changes" : "Register";
  document.getElementById("cf-new").hidden = !camera;
  document.getElementById("cf-delete").hidden = !camera;
  clearErrors();
}

/** The fields of a PATCH: only what changed (the url comes back masked, as GET showed it). */
function changes(body, camera) {
  const out = {};
  for (const [name, value] of Object.entries(body)) {
    if (name === "id" || name === "site") continue;
    if (value !== camera[name]) out[name] = value;
  }
  return out;
}

async function submit(event) {
  event.preventDefault();
  const status = document.getElementById("cf-status");
  const body = values();
  try {
    let saved;
    if (editing) {
      const patch = changes(body, editing);
      if (!Object.keys(patch).length) {
        say(status, "Nothing changed.");
        return;
      }
      saved = await sendJSON("PATCH", `/api/cameras/${encodeURIComponent(editing.id)}`, patch);
    } else {
      saved = await sendJSON("POST", "/api/cameras", body);
    }
    const done = editing ? `Saved ${saved.id}.` : `Registered ${saved.id}.`;
    await loadCameras();
    fill(saved);
    openEditor(saved);
    say(status, done, "ok");
  } catch (error) {
    say(status, "");
    showErrors(errorsOf(error));
  }
}

async function remove() {
  if (!editing || !confirm(`Delete camera ${editing.id} and its counts?`)) return;
  const status = document.getElementById("cf-status");
  try {
    await sendJSON("DELETE", `/api/cameras/${encodeURIComponent(editing.id)}`);
    say(status, `Deleted ${editing.id}.`, "ok");
    fill(null);
    openEditor(null);
    await loadCameras();
  } catch (error) {
    showErrors(errorsOf(error));
  }
}

function renderPicker(cameras) {
  const items = cameras.map((camera) => {
    const pick = el("button", {
      type: "button", className: "link", textContent: `${camera.name} (${camera.id})`,
      dataset: { camera: camera.id },
      on: { click: () => {
        if (canWrite) fill(camera);
        openEditor(camera);
      } },
    });
    return el("li", {}, pick, el("span", { className: "muted",
      textContent: ` ${plural(camera.lines.length, "line")}, ${plural(camera.zones.length, "zone")}` }));
  });
  const list = document.getElementById("camera-picker");
  if (items.length) list.replaceChildren(...items);
  else list.replaceChildren(el("li", { className: "muted", textContent: "None yet." }));
}

export function startRegistration(me) {
  canWrite = me.role !== "viewer";
  form().addEventListener("submit", submit);
  document.getElementById("cf-new").addEventListener("click", () => fill(null));
  document.getElementById("cf-delete").addEventListener("click", remove);
  onCamerasChanged(renderPicker);
  renderPicker(cameraList());
}
