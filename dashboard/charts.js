// Hand-drawn SVG charts. Missing coverage is drawn as a hatched band and breaks the line:
// a minute nobody counted is never drawn as a zero.

const SVG = "http://www.w3.org/2000/svg";
const MINUTE_MS = 60000;

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

/** Runs of consecutive indexes whose value is a number: the pieces of a broken line. */
export function segments(values) {
  const runs = [];
  let run = [];
  values.forEach((value, index) => {
    if (value === null || value === undefined) {
      if (run.length) runs.push(run);
      run = [];
    } else {
      run.push(index);
    }
  });
  if (run.length) runs.push(run);
  return runs;
}

/** A round axis maximum at or above `max` (1, 2, 5 × 10^n). */
export function niceMax(max) {
  if (!(max > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 5, 10]) if (step * power >= max) return step * power;
  return 10 * power;
}

/**
 * Crossings per minute over a sliding window: loaded from /counts (buckets and gaps), then
 * extended by live deltas. Minutes are keyed by their start (ms since the epoch).
 */
export class MinuteSeries {
  constructor(minutes = 60) {
    this.minutes = minutes;
    this.counts = new Map();
    this.gaps = [];
    this.loading = null; // live additions made while a load is in flight
  }

  static minuteOf(ms) {
    return ms - (((ms % MINUTE_MS) + MINUTE_MS) % MINUTE_MS);
  }

  add(atMs, n) {
    const minute = MinuteSeries.minuteOf(atMs);
    this.counts.set(minute, (this.counts.get(minute) || 0) + n);
    this.loading?.push([atMs, n]);
  }

  /** Call before asking the API for the history that `load` takes. */
  beginLoad() {
    this.loading = [];
  }

  cancelLoad() {
    this.loading = null;
  }

  /**
   * buckets: [{bucket_start, count}]; gaps: [{startMs, endMs|null}] (null: still open).
   * Live additions since beginLoad are kept on top: they were committed after the request
   * left (except within the query's own few milliseconds, which may count once twice).
   */
  load(buckets, gaps) {
    const during = this.loading || [];
    this.loading = null;
    this.counts.clear();
    for (const bucket of buckets) this.add(Date.parse(bucket.bucket_start), bucket.count);
    for (const [atMs, n] of during) this.add(atMs, n);
    this.gaps = gaps;
  }

  /** The window ending with the minute of `nowMs`: [{start, count, gap}], oldest first. */
  points(nowMs) {
    const last = MinuteSeries.minuteOf(nowMs);
    const first = last - (this.minutes - 1) * MINUTE_MS;
    for (const minute of this.counts.keys()) if (minute < first) this.counts.delete(minute);
    const out = [];
    for (let start = first; start <= last; start += MINUTE_MS) {
      const gap = this.gaps.some((g) => g.startMs < start + MINUTE_MS
                                        && (g.endMs === null ? nowMs : g.endMs) > start);
      out.push({ start, count: this.counts.get(start) || 0, gap });
    }
    return out;
  }
}

/** A small bar chart of MinuteSeries points; gap minutes are hatched behind the bars. */
export function minuteBars(points, { width = 180, height = 36, label = "" } = {}) {
  const max = niceMax(Math.max(...points.map((p) => p.count)));
  const step = width / points.length;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
                             class: "minute-chart", "aria-label": label });
  chart.append(svg("title", {}, label));
  chart.append(svg("line", { x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5,
                             class: "axis" }));
  points.forEach((point, i) => {
    if (point.gap) {
      chart.append(svg("rect", { x: i * step, y: 0, width: step, height, class: "gap" }));
    }
    if (point.count > 0) {
      const h = Math.max(1, (point.count / max) * (height - 2));
      chart.append(svg("rect", { x: i * step + 0.5, y: height - h, width: Math.max(1, step - 1),
                                 height: h, class: "bar" }));
    }
  });
  return chart;
}

const PALETTE = ["#2f6fb3", "#c2571a", "#2b8a57", "#8a4fb3", "#b3304f", "#5b6475"];

/**
 * A report chart: one line per series over the buckets, broken where a value is null; a
 * bucket with coverage below 1 gets a hatched band (solid hatch where nothing was counted).
 * buckets: [{start, end}] (ms); series: [{name, values}]; coverage: [fraction|null].
 */
export function seriesChart(buckets, series, coverage, { width = 960, height = 260 } = {}) {
  const pad = { left: 44, right: 12, top: 12, bottom: 28 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v !== null))));
  const t0 = buckets.length ? buckets[0].start : 0;
  const t1 = buckets.length ? buckets[buckets.length - 1].end : 1;
  const x = (t) => pad.left + ((t - t0) / Math.max(1, t1 - t0)) * plotW;
  const y = (v) => pad.top + plotH - (v / max) * plotH;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "series-chart",
                             role: "img", "aria-label": "counts per bucket" });
  buckets.forEach((bucket, i) => {
    const covered = coverage[i];
    if (covered === null || covered === undefined || covered >= 1) return;
    const bandW = Math.max(1, x(bucket.end) - x(bucket.start));
    chart.append(svg("rect", { x: x(bucket.start), y: pad.top, width: bandW,
                               height: plotH, class: covered > 0 ? "gap partial" : "gap",
                               "data-bucket": i },
                     svg("title", {}, `coverage ${(covered * 100).toFixed(0)} %`)));
    if (covered === 0 && bandW > 60) {
      chart.append(svg("text", { x: x(bucket.start) + bandW / 2, y: pad.top + plotH / 2,
                                 class: "gap-label", "text-anchor": "middle" }, "no data"));
    }
  });
  for (const tick of [0, max / 2, max]) {
    chart.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: y(tick), y2: y(tick),
                               class: "grid" }));
    chart.append(svg("text", { x: pad.left - 6, y: y(tick) + 4, class: "tick",
                               "text-anchor": "end" }, String(tick)));
  }
  const mid = (i) => (buckets[i].start + buckets[i].end) / 2;
  series.forEach((one, s) => {
    const colour = PALETTE[s % PALETTE.length];
    for (const run of segments(one.values)) {
      const pointsAttr = run.map((i) => `${x(mid(i)).toFixed(1)},${y(one.values[i]).toFixed(1)}`);
      const shape = run.length === 1
        ? svg("circle", { cx: x(mid(run[0])), cy: y(one.values[run[0]]), r: 2.5, fill: colour })
        : svg("polyline", { points: pointsAttr.join(" "), fill: "none", stroke: colour,
                            "stroke-width": 2, class: "series" });
      shape.append(svg("title", {}, one.name));
      chart.append(shape);
    }
  });
  if (buckets.length) {
    for (const [t, anchor] of [[t0, "start"], [t1, "end"]]) {
      chart.append(svg("text", { x: x(t), y: height - 8, class: "tick", "text-anchor": anchor },
                       new Date(t).toLocaleString(undefined, {
                         month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
                         hourCycle: "h23" })));
    }
  }
  return chart;
}

export function legend(series) {
  const list = document.createElement("ul");
  list.className = "legend";
  series.forEach((one, s) => {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = PALETTE[s % PALETTE.length];
    item.append(swatch, one.name);
    list.append(item);
  });
  return list;
}
