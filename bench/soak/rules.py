"""How much each metric may grow over the judged window (the later half of the soak after
warm-up: about 12 minutes of a 30-minute soak), and the ceilings nothing may pass.

Why these numbers:
- rss_bytes: 8 MiB or 3 % of the process's level. A CPython process that has warmed up holds
  its RSS within a few MiB (arenas are reused; the GC sawtooth is flat on average), while a
  leak of 1 MiB a minute, 1.4 GB a day, already grows 12 MiB over the window. Ceiling 2 GiB:
  no role needs that much with the motion detector.
- fds, tcp, threads: a handful. Every role holds a fixed set (broker, database pool, ops
  server, RTSP sessions per camera); a reconnect after a fault replaces one, it does not add
  one. A leaked descriptor per fault (~25 faults in 30 minutes) passes 8 within the window.
- broker connections and channels: 2 or 3, per role connection name and in all: a robust
  reconnect restores the same number; a channel opened per reconnect and never closed shows
  as a staircase.
- queue messages: 100 or half the level; a backlog that grows means the workers fall behind.
  The dead-letter queue is a queue too: a few parked batches are a fault's legitimate
  outcome, a steady stream of them is not.
- backends: 3, per process and in all; SQLAlchemy pools are bounded (pool_size +
  max_overflow), so growth is a connection held and never returned.
"""

from __future__ import annotations

from bench.soak.growth import Rule

MIB = 2.0**20

DEFAULT_RULES: dict[str, Rule] = {
    "rss_bytes": Rule(tolerance_abs=8 * MIB, tolerance_rel=0.03, ceiling=2048 * MIB),
    "fds": Rule(tolerance_abs=8, tolerance_rel=0.1, ceiling=4096),
    "tcp": Rule(tolerance_abs=6, tolerance_rel=0.1, ceiling=2048),
    "threads": Rule(tolerance_abs=4, ceiling=512),
    "connections": Rule(tolerance_abs=2, ceiling=500),
    "channels": Rule(tolerance_abs=3, ceiling=2000),
    "messages": Rule(tolerance_abs=100, tolerance_rel=0.5, ceiling=20_000),
    "backends": Rule(tolerance_abs=3, ceiling=190),  # the private server allows 200
}
