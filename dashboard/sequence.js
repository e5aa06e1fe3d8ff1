// Which events of the shared event sequence (counts and alerts) were already applied. After a
// reconnect the broadcaster replays from `resume_from`, and replayed and live events may
// interleave, so "seen" is a set, not just the highest number. Bounded: numbers far below the
// highest are forgotten (a replay never reaches that far back).

export class SeenEvents {
  constructor(window = 20000) {
    this.window = window;
    this.highest = null;
    this.recent = new Set();
  }

  /** True the first time `seq` is offered; false for a repeat (or one too old to tell). */
  first(seq) {
    if (this.highest !== null && seq <= this.highest - this.window) return false;
    if (this.recent.has(seq)) return false;
    this.recent.add(seq);
    if (this.highest === null || seq > this.highest) this.highest = seq;
    if (this.recent.size > 2 * this.window) {
      const floor = this.highest - this.window;
      for (const old of this.recent) if (old <= floor) this.recent.delete(old);
    }
    return true;
  }
}
