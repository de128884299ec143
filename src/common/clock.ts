/**
 * Time, injected: protocol cores (membership, coordinator, hinted handoff) read the time and
 * set timers only through a Clock, so the simulator can run them on simulated time and a
 * seed replays a run exactly. Only node/ and this file's systemClock touch real timers.
 */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Wall-clock milliseconds (Unix epoch). */
  nowMs(): number;
  /** Calls `fn` once after `delayMs`. */
  setTimer(delayMs: number, fn: () => void): Timer;
}

/** Real time. Timers are unref'd: a pending protocol timer never keeps a process alive. */
export const systemClock: Clock = {
  nowMs: () => Date.now(),
  setTimer(delayMs, fn) {
    const t = setTimeout(fn, delayMs);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/** Resolves after `delayMs` of the clock's time. */
export function sleep(clock: Clock, delayMs: number): Promise<void> {
  return new Promise((resolve) => clock.setTimer(delayMs, resolve));
}
