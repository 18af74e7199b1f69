// A run must never hang in silence: a wait that lasts (for a lease, a database to start, a
// template another process builds, a migration) says what it waits for, every 30 s until it ends.

/** How long a wait goes unremarked. */
export const LONG_WAIT_MS = 30_000;

/**
 * `work`, as it is; while it has not settled, every `everyMs` `notify` is told `what()` waits
 * (read then, so it says the state of that moment) and for how long.
 */
export function noticeLongWait<T>(
  work: Promise<T>,
  what: () => string,
  notify: (message: string) => void = (message) => console.warn(message),
  everyMs = LONG_WAIT_MS,
): Promise<T> {
  const started = Date.now();
  const timer = setInterval(() => {
    const seconds = Math.round((Date.now() - started) / 1000);
    notify(`pglite-oxide: still waiting after ${seconds} s: ${what()}`);
  }, everyMs);
  timer.unref();
  return work.finally(() => clearInterval(timer));
}
