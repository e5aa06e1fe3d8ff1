// Polling that never stacks up and stops when the key is refused.

import { ApiError } from "./api.js";

/**
 * Run `task` now and then `ms` after each run ends, so a slow answer never stacks polls up.
 * A refused key (401) stops it: the key prompt reloads the page with the next key.
 */
export function every(ms, task) {
  const run = async () => {
    try {
      await task();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return;
      console.warn(error);
    }
    setTimeout(run, ms);
  };
  run();
}
