/**
 * Simulated time. Timers wait in a queue ordered by (due time, sequence number), so two timers
 * due at the same ms fire in the order they were set. Time moves only when the simulation
 * says so (`step`, `runUntil`, `runFor`), and jumps straight to the next due timer.
 *
 * Promises and determinism: protocol code reacts to a timer or a message with promise
 * continuations (`await transport.request(...)`). After each timer fires, the run loop waits
 * for one `setImmediate` turn. Node empties the whole microtask queue (promise jobs and
 * nextTicks, however deeply chained) before it runs the next macrotask, so every continuation
 * the timer caused has settled before the next timer fires. setImmediate is a real macrotask,
 * but nothing in the simulated world does real I/O, so nothing else can run in between and the
 * order is the same on every run. (A bounded chain of `await Promise.resolve()` would cut off
 * long continuation chains at an arbitrary depth; one macrotask turn has no such depth.)
 * Code that does real I/O inside the simulation (LMDB, sockets) breaks this guarantee.
 */
import assert from 'node:assert/strict';
import type { Clock, Timer } from '../../src/common/clock.js';
import { SimTrace, simTraceCapacityDefault } from './trace.js';

/** Options of a SimClock. */
export interface SimClockOptions {
  /** What `nowMs()` returns before anything ran (default 0). */
  startMs?: number;
  /** Events kept by the world's trace ring (default 10 000). */
  traceCapacity?: number;
  /** Timers pending at once before the clock asserts (a runaway timer loop). Default 1 000 000. */
  pendingTimersMax?: number;
  /** Timers one run call may fire before it asserts (a zero-delay loop). Default 10 000 000. */
  eventsPerRunMax?: number;
}

interface TimerEntry {
  readonly atMs: number;
  readonly seq: number;
  readonly fn: () => void;
  /** A trace label; null records nothing (the network traces its own events). */
  readonly label: string | null;
  cancelled: boolean;
  fired: boolean;
}

/** Resolves after Node has emptied the microtask queue (see the file comment). */
export function drainMicrotasks(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

/** A simulated Clock that also owns the world's trace. */
export class SimClock implements Clock {
  /** The world's trace: the clock records timer firings, SimNetwork records messages. */
  readonly trace: SimTrace;
  private now: number;
  private nextSeq = 0;
  private readonly heap: TimerEntry[] = [];
  private pending = 0;
  private running = false;
  private readonly pendingTimersMax: number;
  private readonly eventsPerRunMax: number;
  private firedCount = 0;

  constructor(options: SimClockOptions = {}) {
    this.now = options.startMs ?? 0;
    if (!Number.isSafeInteger(this.now) || this.now < 0) throw new RangeError(`'startMs' must be a non-negative integer, got ${this.now}`);
    this.trace = new SimTrace(options.traceCapacity ?? simTraceCapacityDefault);
    this.pendingTimersMax = options.pendingTimersMax ?? 1_000_000;
    this.eventsPerRunMax = options.eventsPerRunMax ?? 10_000_000;
  }

  /** Simulated ms. */
  nowMs(): number {
    return this.now;
  }

  /** Calls `fn` once after `delayMs` of simulated time; `label` names it in the trace (null: not traced). */
  setTimer(delayMs: number, fn: () => void, label: string | null = ''): Timer {
    assert(Number.isFinite(delayMs), `timer delay must be finite, got ${delayMs}`);
    assert(this.pending < this.pendingTimersMax, `more than ${this.pendingTimersMax} pending timers ('pendingTimersMax')`);
    const entry: TimerEntry = { atMs: this.now + Math.max(0, delayMs), seq: this.nextSeq++, fn, label, cancelled: false, fired: false };
    heapPush(this.heap, entry);
    this.pending++;
    return {
      cancel: () => {
        if (entry.cancelled || entry.fired) return;
        entry.cancelled = true;
        this.pending--;
      },
    };
  }

  /** Timers waiting to fire. */
  pendingTimers(): number {
    return this.pending;
  }

  /** Timers fired since the clock was made. */
  get timersFired(): number {
    return this.firedCount;
  }

  /** A view of this clock whose timers can all be cancelled at once (a crashed process). */
  scope(): SimClockScope {
    return new SimClockScope(this);
  }

  /**
   * Fires the next due timer (moving time to it) and lets its continuations settle.
   * Resolves false when no timer is pending.
   */
  async step(): Promise<boolean> {
    return (await this.runLoop(Number.POSITIVE_INFINITY, 1)) > 0;
  }

  /** Fires every timer due at or before `atMs` in order, then sets the time to `atMs`. */
  async runUntil(atMs: number): Promise<void> {
    assert(Number.isFinite(atMs), `runUntil wants a finite time, got ${atMs}`);
    await this.runLoop(atMs, this.eventsPerRunMax);
    if (atMs > this.now) this.now = atMs;
  }

  /** Runs `durationMs` of simulated time. */
  runFor(durationMs: number): Promise<void> {
    assert(durationMs >= 0, `runFor wants a non-negative duration, got ${durationMs}`);
    return this.runUntil(this.now + durationMs);
  }

  /**
   * Runs until `predicate()` holds (checked after every timer) or `timeoutMs` of simulated
   * time has passed. Resolves whether the predicate held.
   */
  async runUntilTrue(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = this.now + timeoutMs;
    await drainMicrotasks();
    assert(!this.running, 'SimClock: a run is already in progress');
    this.running = true;
    try {
      let events = 0;
      while (!predicate()) {
        const entry = this.popDue(deadline);
        if (entry === undefined) {
          if (deadline > this.now) this.now = deadline;
          return predicate();
        }
        assert(++events <= this.eventsPerRunMax, `more than ${this.eventsPerRunMax} timers in one run ('eventsPerRunMax')`);
        this.fire(entry);
        await drainMicrotasks();
      }
      return true;
    } finally {
      this.running = false;
    }
  }

  private async runLoop(atMs: number, eventsMax: number): Promise<number> {
    await drainMicrotasks();
    assert(!this.running, 'SimClock: a run is already in progress');
    this.running = true;
    let events = 0;
    try {
      for (;;) {
        const entry = this.popDue(atMs);
        if (entry === undefined) return events;
        assert(++events <= this.eventsPerRunMax, `more than ${this.eventsPerRunMax} timers in one run ('eventsPerRunMax')`);
        this.fire(entry);
        await drainMicrotasks();
        if (events >= eventsMax) return events;
      }
    } finally {
      this.running = false;
    }
  }

  private popDue(atMs: number): TimerEntry | undefined {
    while (this.heap.length > 0) {
      const top = this.heap[0]!;
      if (top.cancelled) {
        heapPop(this.heap);
        continue;
      }
      if (top.atMs > atMs) return undefined;
      heapPop(this.heap);
      this.pending--;
      return top;
    }
    return undefined;
  }

  private fire(entry: TimerEntry): void {
    assert(entry.atMs >= this.now, 'SimClock: time went backwards');
    this.now = entry.atMs;
    entry.fired = true;
    this.firedCount++;
    if (entry.label !== null) this.trace.record(this.now, 'timer', '', '', -1, -1, entry.label);
    entry.fn();
  }
}

/**
 * A Clock for one simulated process: `cancelAll()` (the process crashed) cancels its pending
 * timers, and any timer it sets afterwards never fires.
 */
export class SimClockScope implements Clock {
  private readonly timers = new Set<Timer>();
  private closed = false;

  constructor(private readonly clock: SimClock) {}

  nowMs(): number {
    return this.clock.nowMs();
  }

  setTimer(delayMs: number, fn: () => void): Timer {
    if (this.closed) return { cancel: () => {} };
    const timer = this.clock.setTimer(delayMs, () => {
      this.timers.delete(timer);
      fn();
    });
    this.timers.add(timer);
    return {
      cancel: () => {
        this.timers.delete(timer);
        timer.cancel();
      },
    };
  }

  /** Cancels every pending timer; later timers never fire. */
  cancelAll(): void {
    this.closed = true;
    for (const t of this.timers) t.cancel();
    this.timers.clear();
  }
}

function before(a: TimerEntry, b: TimerEntry): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}

function heapPush(heap: TimerEntry[], entry: TimerEntry): void {
  heap.push(entry);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!before(heap[i]!, heap[parent]!)) break;
    [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
    i = parent;
  }
}

function heapPop(heap: TimerEntry[]): TimerEntry | undefined {
  const top = heap[0];
  const last = heap.pop();
  if (heap.length > 0 && last !== undefined) {
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && before(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && before(heap[r]!, heap[m]!)) m = r;
      if (m === i) break;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  }
  return top;
}
