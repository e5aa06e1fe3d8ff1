// How numbers, instants and durations read on the page.

import { serverNowMs } from "./api.js";

/** Milliseconds since the epoch from a Date, an ISO string or Unix seconds (a number). */
export function toMs(instant) {
  if (instant instanceof Date) return instant.getTime();
  return typeof instant === "number" ? instant * 1000 : Date.parse(instant);
}

export function duration(seconds) {
  const s = Math.max(0, seconds);
  if (s < 90) return Math.round(s) + " s";
  if (s < 90 * 60) return Math.round(s / 60) + " min";
  if (s < 36 * 3600) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " d";
}

/** "5 min": how long ago, on the server's clock. */
export function age(instant) {
  return duration((serverNowMs() - toMs(instant)) / 1000);
}

export function clock(instant) {
  return new Date(toMs(instant)).toLocaleTimeString();
}

export function dateTime(instant) {
  return new Date(toMs(instant)).toLocaleString();
}

/** "23 Nov 2026, 14:00" in the viewer's time zone, 24-hour: report buckets and axes. */
export function bucketTime(instant) {
  return new Date(toMs(instant)).toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    hourCycle: "h23",
  });
}

export function millis(seconds) {
  return seconds === null || seconds === undefined ? "—" : Math.round(seconds * 1000) + " ms";
}

export function percent(fraction) {
  return fraction === null || fraction === undefined ? "—" : (fraction * 100).toFixed(0) + " %";
}

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return value.toFixed(value >= 10 || unit === 0 ? 0 : 1) + " " + units[unit];
}

/** "1 line", "3 lines"; "1 batch", "2 batches" with the plural given. */
export function plural(n, word, words = word + "s") {
  return `${n} ${n === 1 ? word : words}`;
}
