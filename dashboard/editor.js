// The line/zone editor over a camera's latest frame: drag to draw a line (its arrow shows the
// "in" direction), click corners for a zone, drag a handle to move a point; names and exact
// coordinates in the table below (also the keyboard's way in); saved with PUT lines/zones.

import { ApiError, getBlob, sendJSON } from "./api.js";
import { loadCameras } from "./cameras.js";
import { svg } from "./charts.js";
import { el, say } from "./dom.js";
import { plural } from "./format.js";
import { Drawing, formatPoints, inDirection } from "./shapes.js";

const HANDLE_PX = 10;
const ARROW_PX = 28;
const HINTS = {
  line: "Drag across the frame to draw a line; the arrow points the way counted as in.",
  zone: "Click the corners; double-click, Enter or “Close zone” finishes; Esc cancels.",
};

let camera = null;
let drawing = null;
let tool = "line";
let canWrite = false;
let frameUrl = null;

const $ = (id) => document.getElementById(id);
const path = (suffix) => `/api/cameras/${encodeURIComponent(camera.id)}/${suffix}`;

function size() {
  const box = $("editor-overlay").getBoundingClientRect();
  return { w: Math.max(1, box.width), h: Math.max(1, box.height) };
}

function relative(event) {
  const box = $("editor-overlay").getBoundingClientRect();
  return { x: (event.clientX - box.left) / box.width, y: (event.clientY - box.top) / box.height };
}

function lineShapes(line, w, h, className) {
  const ax = line.a.x * w, ay = line.a.y * h, bx = line.b.x * w, by = line.b.y * h;
  const n = inDirection(line, w, h);
  const mx = (ax + bx) / 2, my = (ay + by) / 2;
  const tipX = mx + n.x * ARROW_PX, tipY = my + n.y * ARROW_PX;
  // The head: two points back from the tip, either side of the shaft.
  const head = [[tipX, tipY], [tipX - n.x * 9 - n.y * 6, tipY - n.y * 9 + n.x * 6],
                [tipX - n.x * 9 + n.y * 6, tipY - n.y * 9 - n.x * 6]];
  return [
    svg("line", { x1: ax, y1: ay, x2: bx, y2: by, class: className }),
    svg("line", { x1: mx, y1: my, x2: tipX, y2: tipY, class: "arrow" }),
    svg("polygon", { points: head.map((p) => p.join(",")).join(" "), class: "arrow-head" }),
    svg("text", { x: tipX + n.x * 8, y: tipY + n.y * 8 + 4, class: "arrow-label",
                  "text-anchor": "middle" }, "in"),
  ];
}

function renderOverlay() {
  const overlay = $("editor-overlay");
  if (!drawing) return;
  const { w, h } = size();
  overlay.setAttribute("viewBox", `0 0 ${w} ${h}`);
  const nodes = [];
  for (const shape of drawing.shapes) {
    const group = svg("g", { class: `shape ${shape.kind}`, "data-name": shape.name });
    if (shape.kind === "line") {
      group.append(...lineShapes(shape, w, h, "stroke"));
      group.append(svg("text", { x: shape.a.x * w + 6, y: shape.a.y * h + 14, class: "label" },
                       shape.name));
    } else {
      group.append(svg("polygon", { points: shape.points.map((p) => `${p.x * w},${p.y * h}`)
        .join(" "), class: "stroke area" }));
      group.append(svg("text", { x: shape.points[0].x * w + 6, y: shape.points[0].y * h + 14,
                                 class: "label" }, shape.name));
    }
    if (canWrite) {
      const corners = shape.kind === "line" ? [shape.a, shape.b] : shape.points;
      for (const p of corners) {
        group.append(svg("circle", { cx: p.x * w, cy: p.y * h, r: 5, class: "handle" }));
      }
    }
    nodes.push(group);
  }
  const draft = drawing.draft;
  if (draft?.kind === "line") nodes.push(svg("g", { class: "draft" }, ...lineShapes(draft, w, h, "stroke")));
  if (draft?.kind === "zone") {
    nodes.push(svg("g", { class: "draft" },
      svg("polyline", { points: draft.points.map((p) => `${p.x * w},${p.y * h}`).join(" "),
                        class: "stroke" }),
      ...draft.points.map((p) => svg("circle", { cx: p.x * w, cy: p.y * h, r: 4, class: "handle" }))));
  }
  overlay.replaceChildren(...nodes);
  $("editor-finish-zone").hidden = draft?.kind !== "zone";
}

function shapeRow(shape) {
  const label = `${shape.kind} ${shape.name}`;
  const coords = shape.kind === "line" ? formatPoints([shape.a, shape.b]) : formatPoints(shape.points);
  const name = el("input", { value: shape.name, maxLength: 64, readOnly: !canWrite,
                             className: "shape-name", attrs: { "aria-label": `name of ${label}` },
                             on: { input: (e) => { drawing.rename(shape, e.target.value); renderOverlay(); } } });
  const points = el("input", { value: coords, readOnly: !canWrite, className: "shape-points",
                               attrs: { "aria-label": `coordinates of ${label}` },
                               on: { change: (e) => {
                                 try {
                                   drawing.setPoints(shape, e.target.value);
                                   say($("editor-error"), "");
                                 } catch (error) {
                                   say($("editor-error"), `${shape.name}: ${error.message}`, "error");
                                 }
                                 renderOverlay();
                               } } });
  const remove = el("button", { type: "button", className: "quiet", textContent: "Delete",
                                hidden: !canWrite, attrs: { "aria-label": `delete ${label}` },
                                on: { click: () => { drawing.remove(shape); render(); } } });
  const version = shape.version ? ` v${shape.version}` : " (new)";
  return el("tr", { dataset: { kind: shape.kind } },
            el("td", { textContent: shape.kind + version }), el("td", {}, name),
            el("td", {}, points), el("td", {}, remove));
}

function render() {
  const rows = drawing.shapes.map(shapeRow);
  const body = $("editor-shapes").querySelector("tbody");
  if (rows.length) body.replaceChildren(...rows);
  else body.replaceChildren(el("tr", { className: "empty" }, el("td", { colSpan: 4,
    textContent: "No lines or zones yet: draw one on the frame." })));
  renderOverlay();
}

async function loadFrame() {
  const canvas = $("editor-canvas");
  const img = $("editor-frame");
  const forCamera = camera;
  try {
    const blob = await getBlob(path("snapshot"), "image/jpeg");
    if (camera !== forCamera) return;
    if (frameUrl) URL.revokeObjectURL(frameUrl);
    frameUrl = URL.createObjectURL(blob);
    img.src = frameUrl;
    await img.decode();
    img.hidden = false;
    canvas.dataset.frame = "loaded";
  } catch (error) {
    if (camera !== forCamera) return;
    img.hidden = true;
    canvas.dataset.frame = "missing";
    canvas.dataset.message = error instanceof ApiError && error.status === 404
      ? "No frame yet: ingest stores one while the camera is live. You can draw anyway."
      : `The frame could not be loaded: ${error.message}`;
  }
  renderOverlay();
}

function setTool(name) {
  tool = name;
  drawing?.cancelDraft();
  for (const button of document.querySelectorAll("#editor [data-tool]")) {
    button.setAttribute("aria-pressed", String(button.dataset.tool === name));
  }
  $("editor-hint").textContent = HINTS[name];
  renderOverlay();
}

function describe(error) {
  if (!(error instanceof ApiError && error.status === 422)) return error.message;
  return [...error.fieldErrors()].map(([field, messages]) =>
    `${field}: ${messages.join("; ")}`).join(" ");
}

async function save() {
  const { lines, zones } = drawing.payload();
  const status = $("editor-status");
  say(status, "Saving…");
  try {
    await sendJSON("PUT", path("lines"), { lines });
    const saved = await sendJSON("PUT", path("zones"), { zones });
    say($("editor-error"), "");
    openEditor(saved, { force: true });
    say(status, `Saved: ${plural(saved.lines.length, "line")}, `
        + `${plural(saved.zones.length, "zone")}.`, "ok");
    loadCameras().catch(console.warn);
  } catch (error) {
    say(status, "");
    say($("editor-error"), describe(error), "error");
  }
}

export function openEditor(next, { force = false } = {}) {
  if (!force && drawing?.dirty && next?.id !== camera?.id
      && !confirm("Discard the unsaved lines and zones?")) return;
  camera = next;
  $("editor").hidden = !camera;
  $("editor-empty").hidden = Boolean(camera);
  if (!camera) return;
  $("editor-title").textContent = `Lines and zones of ${camera.name} (${camera.id})`;
  $("editor").dataset.camera = camera.id;
  drawing = new Drawing(camera);
  say($("editor-error"), "");
  say($("editor-status"), "");
  render();
  loadFrame();
}

function onPointerDown(event) {
  if (!canWrite || !drawing || event.button !== 0) return;
  const p = relative(event);
  const { w, h } = size();
  const handle = drawing.draft ? null : drawing.handleAt(p, HANDLE_PX / Math.max(w, h));
  if (handle) drawing.grab(handle);
  else if (tool === "line") drawing.startLine(p);
  else drawing.addZonePoint(p);
  $("editor-overlay").setPointerCapture(event.pointerId);
  event.preventDefault();
  renderOverlay();
}

// The new shape's name, selected: typing names it.
function focusNewest() {
  const name = $("editor-shapes").querySelector("tbody tr:last-child .shape-name");
  name.focus();
  name.select();
}

function onPointerUp() {
  if (!drawing) return;
  const added = drawing.release();
  render();
  if (added) focusNewest();
}

function closeZone() {
  if (drawing?.closeZone()) render();
  else say($("editor-error"), "A zone needs at least three corners.", "error");
}

export function startEditor(me) {
  canWrite = me.role !== "viewer";
  const overlay = $("editor-overlay");
  overlay.addEventListener("pointerdown", onPointerDown);
  overlay.addEventListener("pointermove", (event) => {
    if (drawing && (drawing.grabbed || drawing.draft?.kind === "line")) {
      drawing.dragTo(relative(event));
      renderOverlay();
    }
  });
  overlay.addEventListener("pointerup", onPointerUp);
  overlay.addEventListener("dblclick", () => { if (tool === "zone") closeZone(); });
  document.addEventListener("keydown", (event) => {
    if ($("editor").hidden || !drawing?.draft) return;
    if (event.key === "Escape") drawing.cancelDraft();
    else if (event.key === "Enter" && drawing.draft.kind === "zone") closeZone();
    else return;
    renderOverlay();
  });
  for (const button of document.querySelectorAll("#editor [data-tool]")) {
    button.hidden = !canWrite;
    button.addEventListener("click", () => setTool(button.dataset.tool));
  }
  $("editor-finish-zone").addEventListener("click", closeZone);
  for (const kind of ["line", "zone"]) {
    $(`editor-add-${kind}`).addEventListener("click", () => {
      drawing.addDefault(kind);
      render();
      focusNewest();
    });
  }
  $("editor-reload").addEventListener("click", loadFrame);
  $("editor-save").addEventListener("click", save);
  $("editor-revert").addEventListener("click", () => openEditor(camera, { force: true }));
  new ResizeObserver(renderOverlay).observe($("editor-canvas"));
  setTool("line");
}
