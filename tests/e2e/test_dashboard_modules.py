"""The dashboard's pure modules (charts, event dedupe, rates, the editor's model, report pivot,
422 errors), run in real Chromium as the page runs them: the dashboard directory is served as
static files (no API, no database) and each case imports a module and returns a value."""

from __future__ import annotations

import contextlib
from typing import Any

from starlette.staticfiles import StaticFiles

from registry.settings import DASHBOARD_DIR
from tests.e2e.browser import WIDTH, chromium
from tests.support import serving


def static_dashboard() -> contextlib.AbstractAsyncContextManager[str]:
    return serving(StaticFiles(directory=DASHBOARD_DIR, html=True))


# (module, JavaScript body run with the module as `m`, expected result)
CASES: list[tuple[str, str, Any]] = [
    ("charts.js", "return m.segments([1, null, 2, 3, null, undefined, 0])", [[0], [2, 3], [6]]),
    ("charts.js", "return m.segments([null, null])", []),
    ("charts.js", "return [0, 0.3, 1, 7, 12, 101, -5].map(m.niceMax)", [1, 0.5, 1, 10, 20, 200, 1]),
    # Minute m-2 counted 3, a camera outage over minute m-1, minute m quiet but watched: the
    # outage is a gap, not a zero, and live deltas land in their minute.
    ("charts.js", """
        const now = Date.UTC(2030, 0, 1, 12, 10, 30);
        const s = new m.MinuteSeries(3);
        s.load([{bucket_start: new Date(Date.UTC(2030, 0, 1, 12, 8)).toISOString(), count: 3},
                {bucket_start: new Date(Date.UTC(2030, 0, 1, 11, 0)).toISOString(), count: 9}],
               [{startMs: Date.UTC(2030, 0, 1, 12, 9, 10),
                 endMs: Date.UTC(2030, 0, 1, 12, 9, 40)}]);
        s.add(now, 2);
        return s.points(now).map((p) => [p.count, p.gap]);""",
     [[3, False], [0, True], [2, False]]),
    ("charts.js", """
        const now = Date.UTC(2030, 0, 1, 12, 10, 30);
        const s = new m.MinuteSeries(2);
        s.load([], [{startMs: Date.UTC(2030, 0, 1, 12, 9, 50), endMs: null}]);
        return s.points(now).map((p) => p.gap);""", [True, True]),
    # Live deltas that arrive while the history loads are kept on top of it.
    ("charts.js", """
        const now = Date.UTC(2030, 0, 1, 12, 10, 30);
        const s = new m.MinuteSeries(2);
        s.add(now - 60000, 7);
        s.beginLoad();
        s.add(now, 2);
        s.load([{bucket_start: new Date(Date.UTC(2030, 0, 1, 12, 9)).toISOString(), count: 1},
                {bucket_start: new Date(Date.UTC(2030, 0, 1, 12, 10)).toISOString(), count: 4}],
               []);
        s.add(now, 1);
        return [s.points(now).map((p) => p.count), s.loading];""", [[1, 7], None]),
    # Replayed events may interleave with live ones after a reconnect: each is applied once.
    ("sequence.js", """
        const seen = new m.SeenEvents(100);
        return [5, 5, 3, 7, 3, 6, 7].map((seq) => seen.first(seq));""",
     [True, False, True, True, False, True, False]),
    ("sequence.js", """
        const seen = new m.SeenEvents(10);
        for (let seq = 1; seq <= 100; seq++) seen.first(seq);
        return [seen.first(85), seen.first(95), seen.first(101), seen.recent.size <= 20];""",
     [False, False, True, True]),
    ("pool.js", """
        const r = new m.CounterRates();
        return [r.observe("w", "b1", 10, 1000), r.observe("w", "b1", 30, 3000),
                r.observe("w", "b1", 30, 3000), r.observe("w", "b2", 5, 4000),
                r.observe("w", "b2", 2, 5000), r.observe("w", "b2", 12, 7000)];""",
     [None, 10, None, None, None, 5]),
    ("pool.js", """return [m.errorRate({batches_ok: 6, batches_failed: 1, batches_timed_out: 1,
                                         batches_data_errors: 5}), m.errorRate({})];""",
     [0.25, None]),
    # The arrow shows the API's "in": side +1 to side -1 of contracts/geometry.side_of.
    ("shapes.js", """
        const v = m.inDirection({a: {x: 0.5, y: 0}, b: {x: 0.5, y: 1}}, 640, 360);
        const h = m.inDirection({a: {x: 0, y: 0.5}, b: {x: 1, y: 0.5}}, 640, 360);
        return [v.x, v.y, h.x, h.y].map((n) => Math.round(n) + 0);""", [1, 0, 0, -1]),
    ("shapes.js", """
        const d = new m.Drawing({lines: [{id: 4, version: 2, name: "door",
                                          a: {x: 0.1, y: 0.1}, b: {x: 0.9, y: 0.1}}], zones: []});
        d.startLine({x: 0.5, y: -0.2});
        d.dragTo({x: 0.5, y: 0.5});
        d.dragTo({x: 0.50001, y: 1.3});
        const added = d.release();
        d.startLine({x: 0.2, y: 0.2});
        d.dragTo({x: 0.201, y: 0.2});
        const click = d.release();
        return [added.name, added.a, added.b, click, d.payload().lines.length, d.dirty];""",
     ["line 1", {"x": 0.5, "y": 0}, {"x": 0.5, "y": 1}, None, 2, True]),
    ("shapes.js", """
        const d = new m.Drawing(null);
        d.addZonePoint({x: 0.1, y: 0.1});
        d.addZonePoint({x: 0.9, y: 0.1});
        d.addZonePoint({x: 0.9, y: 0.1001});  // the second click of a double-click
        const early = d.closeZone();
        d.addZonePoint({x: 0.5, y: 0.8});
        const zone = d.closeZone();
        d.rename(zone, " queue ");
        return [early, zone.points.length, d.payload().zones];""",
     [None, 3, [{"name": "queue", "points": [{"x": 0.1, "y": 0.1}, {"x": 0.9, "y": 0.1},
                                              {"x": 0.5, "y": 0.8}]}]]),
    ("shapes.js", """
        const d = new m.Drawing({lines: [{id: 1, version: 1, name: "a", a: {x: 0.2, y: 0.2},
                                          b: {x: 0.8, y: 0.8}}], zones: []});
        const handle = d.handleAt({x: 0.79, y: 0.81}, 0.02);
        d.grab(handle);
        d.dragTo({x: 0.6, y: 0.9});
        d.release();
        const far = d.handleAt({x: 0.5, y: 0.1}, 0.02);
        const errors = [];
        for (const text of ["0.1,0.1", "0.1,0.1 2,0", "a,b c,d"]) {
          try { d.setPoints(d.shapes[0], text); } catch (e) { errors.push(e.message); }
        }
        return [handle.point, d.shapes[0].b, far, errors];""",
     ["b", {"x": 0.6, "y": 0.9}, None,
      ["a line has exactly two points: a and b", '"2,0" is outside 0..1', '"a,b" is not x,y']]),
    # Report rows (one per series and bucket) pivoted: a bucket nobody watched stays null.
    ("reports.js", """
        const row = (start, end, direction, count, coverage) => ({start, end, camera_id: "door",
          line: "entry", object_class: null, direction, count, coverage});
        const r = m.readReport({group_by: ["line", "direction"], cameras: [{camera_id: "door"}],
          crossings: [
            row("2030-01-01T10:00:00Z", "2030-01-01T11:00:00Z", "in", 4, 1),
            row("2030-01-01T11:00:00Z", "2030-01-01T12:00:00Z", "in", null, 0),
            row("2030-01-01T12:00:00Z", "2030-01-01T13:00:00Z", "in", 2, 0.5),
            row("2030-01-01T10:00:00Z", "2030-01-01T11:00:00Z", "out", 0, 1),
            row("2030-01-01T11:00:00Z", "2030-01-01T12:00:00Z", "out", null, 0),
            row("2030-01-01T12:00:00Z", "2030-01-01T13:00:00Z", "out", 1, 0.5)],
          gaps: []});
        return [r.buckets.length, r.coverage, r.series];""",
     [3, [1, 0, 0.5], [{"name": "entry · in", "values": [4, None, 2]},
                       {"name": "entry · out", "values": [0, None, 1]}]]),
    ("api.js", """
        const e = new m.ApiError(422, [{loc: ["body", "url"], msg: "scheme must be rtsp"},
                                       {loc: ["body", "lines", 0, "name"], msg: "too long"},
                                       {loc: ["body"], msg: "bad body"}], "/api/cameras");
        return Object.fromEntries(e.fieldErrors());""",
     {"url": ["scheme must be rtsp"], "lines": ["0.name: too long"], "": ["bad body"]}),
    ("alerts.js", """
        const live = m.normalise({type: "alert", event_seq: 9, alert_id: 3, rule_id: 1,
          rule_name: "busy", kind: "count_over", state: "resolved", subject: "door",
          message: "m", value: 1, threshold: 5, at: 1900000100, fired_at: 1900000000});
        const rest = m.normalise({id: 3, rule_id: 1, rule_name: "busy", state: "firing",
          subject: "door", message: "m", value: 9, threshold: 5,
          fired_at: "2030-03-17T17:46:40Z", resolved_at: null});
        return [live.id, live.resolved_at, rest.id, rest.fired_at, rest.resolved_at];""",
     [3, 1900000100000, 3, 1900000000000, None]),
]


async def test_pure_modules_in_chromium() -> None:
    async with static_dashboard() as base, chromium() as browser:
        page = await browser.new_page(viewport={"width": WIDTH, "height": 700})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        # Without a key the page asks for one and calls no API (there is none here).
        await page.goto(f"{base}/index.html")
        await page.wait_for_selector("#key-prompt:not([hidden])", timeout=10_000)
        assert await page.locator("#views").is_hidden()
        failures = []
        for module, body, expected in CASES:
            got = await page.evaluate(
                f"async () => {{ const m = await import('/{module}'); {body} }}")
            if got != expected:
                failures.append(f"{module}: {body.strip()[:80]}...\n  got {got!r}\n"
                                f"  expected {expected!r}")
        assert not failures, "\n".join(failures)
        assert not errors, errors
