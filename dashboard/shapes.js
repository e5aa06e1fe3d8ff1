// The line/zone editor's model, without any DOM: the shapes of one camera in relative (0..1)
// coordinates, the shape being drawn, and what the API's PUT lines/zones takes.

const MIN_LINE = 0.01; // a click without a drag draws no line
const DECIMALS = 10000;

export function clampPoint(p) {
  const clamp = (v) => Math.round(Math.min(1, Math.max(0, v)) * DECIMALS) / DECIMALS;
  return { x: clamp(p.x), y: clamp(p.y) };
}

/**
 * The way counted as "in" across a line from a to b, as a unit vector in pixels of a w×h
 * frame: from side +1 to side -1 of contracts/geometry.py's side_of. A line drawn top to
 * bottom counts left-to-right as in; one drawn left to right counts bottom-to-top as in.
 */
export function inDirection(line, w, h) {
  const dx = (line.b.x - line.a.x) * w;
  const dy = (line.b.y - line.a.y) * h;
  const length = Math.hypot(dx, dy) || 1;
  return { x: dy / length, y: -dx / length };
}

export function formatPoints(points) {
  return points.map((p) => `${p.x},${p.y}`).join(" ");
}

/** "0.5,0 0.5,1" -> points; throws with a readable message. */
export function parsePoints(text) {
  const points = text.trim().split(/\s+/).filter(Boolean).map((pair) => {
    const [x, y, extra] = pair.split(",").map(Number);
    if (extra !== undefined || !Number.isFinite(x) || !Number.isFinite(y)) {
      throw new Error(`"${pair}" is not x,y`);
    }
    if (x < 0 || x > 1 || y < 0 || y > 1) throw new Error(`"${pair}" is outside 0..1`);
    return { x, y };
  });
  return points;
}

function uniqueName(shapes, prefix) {
  const taken = new Set(shapes.map((s) => s.name));
  for (let n = 1; ; n++) if (!taken.has(`${prefix} ${n}`)) return `${prefix} ${n}`;
}

export class Drawing {
  constructor(camera) {
    this.shapes = [
      ...(camera?.lines || []).map((l) => ({ kind: "line", name: l.name, a: l.a, b: l.b,
                                              id: l.id, version: l.version })),
      ...(camera?.zones || []).map((z) => ({ kind: "zone", name: z.name, points: z.points,
                                              id: z.id, version: z.version })),
    ];
    this.draft = null; // {kind: "line", a, b} | {kind: "zone", points}
    this.grabbed = null; // {shape, point: "a" | "b" | index}
    this.dirty = false;
  }

  startLine(p) {
    this.draft = { kind: "line", a: clampPoint(p), b: clampPoint(p) };
  }

  /** Pointer moved while pressed: stretch the draft line, or move the grabbed handle. */
  dragTo(p) {
    const point = clampPoint(p);
    if (this.grabbed) {
      const { shape, point: which } = this.grabbed;
      if (shape.kind === "line") shape[which] = point;
      else shape.points = shape.points.map((q, i) => (i === which ? point : q));
      this.dirty = true;
    } else if (this.draft?.kind === "line") {
      this.draft.b = point;
    }
  }

  /** Pointer released: a draft line long enough becomes a shape (returned). */
  release() {
    if (this.grabbed) {
      this.grabbed = null;
      return null;
    }
    if (this.draft?.kind !== "line") return null;
    const { a, b } = this.draft;
    this.draft = null;
    if (Math.hypot(b.x - a.x, b.y - a.y) < MIN_LINE) return null;
    return this.add({ kind: "line", name: uniqueName(this.shapes, "line"), a, b });
  }

  addZonePoint(p) {
    if (this.draft?.kind !== "zone") this.draft = { kind: "zone", points: [] };
    const point = clampPoint(p);
    const last = this.draft.points[this.draft.points.length - 1];
    // The two clicks of the double-click that closes a zone land on one spot: one corner.
    if (last && Math.hypot(last.x - point.x, last.y - point.y) < 0.005) return;
    this.draft.points.push(point);
  }

  /** Close the zone being drawn; null (and the draft kept) while it has under 3 points. */
  closeZone() {
    if (this.draft?.kind !== "zone" || this.draft.points.length < 3) return null;
    const { points } = this.draft;
    this.draft = null;
    return this.add({ kind: "zone", name: uniqueName(this.shapes, "zone"), points });
  }

  cancelDraft() {
    this.draft = null;
    this.grabbed = null;
  }

  /** A shape to place by typing its coordinates (the keyboard's way to draw). */
  addDefault(kind) {
    if (kind === "line") {
      return this.add({ kind, name: uniqueName(this.shapes, "line"), a: { x: 0.5, y: 0.1 },
                        b: { x: 0.5, y: 0.9 } });
    }
    return this.add({ kind, name: uniqueName(this.shapes, "zone"), points: [
      { x: 0.25, y: 0.25 }, { x: 0.75, y: 0.25 }, { x: 0.75, y: 0.75 }, { x: 0.25, y: 0.75 }] });
  }

  add(shape) {
    this.shapes.push(shape);
    this.dirty = true;
    return shape;
  }

  /** The handle (a line's end, a zone's corner) within `tolerance` of p, nearest first. */
  handleAt(p, tolerance) {
    let best = null;
    for (const shape of this.shapes) {
      const handles = shape.kind === "line" ? [["a", shape.a], ["b", shape.b]]
        : shape.points.map((q, i) => [i, q]);
      for (const [point, q] of handles) {
        const distance = Math.hypot(q.x - p.x, q.y - p.y);
        if (distance <= tolerance && (!best || distance < best.distance)) {
          best = { shape, point, distance };
        }
      }
    }
    return best;
  }

  grab(handle) {
    this.grabbed = { shape: handle.shape, point: handle.point };
  }

  remove(shape) {
    this.shapes = this.shapes.filter((s) => s !== shape);
    this.dirty = true;
  }

  rename(shape, name) {
    shape.name = name;
    this.dirty = true;
  }

  /** Set a shape's coordinates from "x,y x,y ..." text; throws with a readable message. */
  setPoints(shape, text) {
    const points = parsePoints(text);
    if (shape.kind === "line") {
      if (points.length !== 2) throw new Error("a line has exactly two points: a and b");
      [shape.a, shape.b] = points;
    } else {
      if (points.length < 3) throw new Error("a zone needs at least three points");
      shape.points = points;
    }
    this.dirty = true;
  }

  /** The bodies of PUT /lines and PUT /zones: every shape of each kind (the whole set). */
  payload() {
    return {
      lines: this.shapes.filter((s) => s.kind === "line")
        .map((s) => ({ name: s.name.trim(), a: s.a, b: s.b })),
      zones: this.shapes.filter((s) => s.kind === "zone")
        .map((s) => ({ name: s.name.trim(), points: s.points })),
    };
  }
}
