/**
 * The driver runs a workload against one target connection, in one of two loops:
 *
 * - closed loop: `concurrency` workers, each sends its next operation when the previous one
 *   completes; latency is measured from the send.
 * - open loop (`ratePerSec`): operations are due on a fixed schedule (t0 + i / rate) whether or
 *   not earlier ones have completed, and latency is measured from the intended send time, so a
 *   stall of the target shows in the latencies of everything that was due during it (no
 *   coordinated omission). At most `concurrency` operations are outstanding: when all slots are
 *   busy, due operations wait for a slot (their wait counts in their latency) and the driver
 *   counts them; what is still due but unsent when the run ends is counted as `unsent`. The
 *   backlog is a position in the schedule, not a queue, so nothing grows without bound.
 *
 * A warm-up period (by time) comes first; its operations are run but not recorded. The
 * measured part ends after `durationMs` or after `ops` operations, whichever is given (both:
 * whichever comes first). Failed operations are counted by kind and not put in histograms.
 *
 * Time comes from an injected Clock (`clock`; default `loadgenClock`, real time), so tests
 * run the driver on simulated time and assert exact durations, counts and latencies.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Clock } from '../../src/common/clock.js';
import { LatencyHistogram } from './histogram.js';
import type { Target } from './target.js';
import type { OperationSource } from './workloads.js';

export interface DriverOptions {
  /** Closed loop: number of workers. Open loop: most operations outstanding at once. */
  concurrency: number;
  /** Operations per second: open loop. Absent: closed loop. */
  ratePerSec?: number;
  /** Length of the measured part, after the warm-up. */
  durationMs?: number;
  /** Number of measured operations, after the warm-up. */
  ops?: number;
  warmupMs?: number;
  /** Called once when the warm-up ends and once when the measured part ends (before draining). */
  onPhase?: (phase: 'measure' | 'drain') => void;
  /** Where time comes from (default `loadgenClock`); tests pass a simulated clock. */
  clock?: Clock;
}

/**
 * Real time for the load generator: sub-millisecond `this.clock.nowMs()` (latencies are
 * recorded in microseconds) on the Unix epoch, and timers that keep the process alive, since
 * an open loop waiting for its next send has nothing else pending.
 */
export const loadgenClock: Clock = {
  nowMs: () => performance.timeOrigin + performance.now(),
  setTimer(delayMs, fn) {
    const t = setTimeout(fn, delayMs);
    return { cancel: () => clearTimeout(t) };
  },
};

/** How well an open loop kept to its schedule. */
export interface ScheduleStats {
  /** Measured operations sent. */
  sent: number;
  /** Measured operations that had to wait for a free slot (the target fell behind). */
  waitedForSlot: number;
  /** Measured operations sent more than `CLIENT_LATE_MS` late with a slot free (the client fell behind). */
  clientLate: number;
  /** Largest lateness of a send, in ms, for either reason. */
  maxLagMs: number;
  /** Operations due in the measured window but never sent because slots stayed busy. */
  unsent: number;
}

export interface DriverResult {
  mode: 'closed' | 'open';
  concurrency: number;
  ratePerSec: number | null;
  /** From the end of the warm-up to the last measured completion. */
  measuredMs: number;
  /** Measured operations that succeeded. */
  ops: number;
  /** Measured operations that failed. */
  errors: number;
  errorsByKind: Record<string, number>;
  /** Successful measured operations' latency by operation type. */
  histograms: Map<string, LatencyHistogram>;
  warmupOps: number;
  warmupErrors: number;
  schedule: ScheduleStats | null;
}

/** What a progress display reads while the driver runs. */
export interface DriverLive {
  phase: 'warmup' | 'measure' | 'drain' | 'done';
  /** Measured operations completed so far (successes and failures). */
  completed: number;
  warmupCompleted: number;
}

/** A send this much later than intended while a slot was free means the client could not keep up. */
export const CLIENT_LATE_MS = 5;
/** Ops within this much of their intended time are sent on the current wake-up (timer granularity). */
const SEND_AHEAD_MS = 1;
/** A closed loop that never waits on I/O yields to the event loop this often. */
const YIELD_EVERY_MS = 20;

/** A short, stable name for an error: its `code`, a leading upper-case word of the message, or its class. */
export function errorKind(err: unknown): string {
  if (err && typeof err === 'object') {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && code.length > 0) return code;
    if (typeof code === 'number') return `code ${code}`;
  }
  if (err instanceof Error) {
    const word = /^([A-Z][A-Z0-9_]{2,})\b/.exec(err.message);
    if (word) return word[1]!;
    return err.name || 'Error';
  }
  return typeof err;
}

/** Runs one workload against one target connection. */
export class Driver {
  readonly live: DriverLive = { phase: 'warmup', completed: 0, warmupCompleted: 0 };
  private readonly histograms = new Map<string, LatencyHistogram>();
  private readonly errorsByKind: Record<string, number> = {};
  private ops = 0;
  private errors = 0;
  private warmupErrors = 0;
  private lastCompletionMs = 0;
  private warmupEndMs = 0;
  private readonly clock: Clock;

  constructor(
    private readonly target: Target,
    private readonly source: OperationSource,
    private readonly options: DriverOptions,
  ) {
    const { concurrency, ratePerSec, durationMs, ops, warmupMs } = options;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new RangeError(`'concurrency' must be a positive integer, got ${concurrency}`);
    if (ratePerSec !== undefined && !(ratePerSec > 0 && Number.isFinite(ratePerSec))) throw new RangeError(`'ratePerSec' must be a positive number, got ${ratePerSec}`);
    if (durationMs === undefined && ops === undefined) throw new RangeError("give 'durationMs' or 'ops' (or both)");
    if (durationMs !== undefined && !(durationMs > 0)) throw new RangeError(`'durationMs' must be positive, got ${durationMs}`);
    if (ops !== undefined && !(Number.isSafeInteger(ops) && ops > 0)) throw new RangeError(`'ops' must be a positive integer, got ${ops}`);
    if (warmupMs !== undefined && !(warmupMs >= 0)) throw new RangeError(`'warmupMs' must be >= 0, got ${warmupMs}`);
    this.clock = options.clock ?? loadgenClock;
  }

  async run(): Promise<DriverResult> {
    const t0 = this.clock.nowMs();
    this.warmupEndMs = t0 + (this.options.warmupMs ?? 0);
    this.lastCompletionMs = this.warmupEndMs;
    const schedule = this.options.ratePerSec === undefined ? null : await this.openLoop(t0, this.options.ratePerSec);
    if (schedule === null) await this.closedLoop();
    this.live.phase = 'done';
    return {
      mode: schedule ? 'open' : 'closed',
      concurrency: this.options.concurrency,
      ratePerSec: this.options.ratePerSec ?? null,
      measuredMs: Math.max(0, this.lastCompletionMs - this.warmupEndMs),
      ops: this.ops,
      errors: this.errors,
      errorsByKind: { ...this.errorsByKind },
      histograms: this.histograms,
      warmupOps: this.live.warmupCompleted,
      warmupErrors: this.warmupErrors,
      schedule,
    };
  }

  private endMs(): number {
    return this.options.durationMs === undefined ? Infinity : this.warmupEndMs + this.options.durationMs;
  }

  private enterMeasure(): void {
    if (this.live.phase === 'warmup') {
      this.live.phase = 'measure';
      this.options.onPhase?.('measure');
    }
  }

  private enterDrain(): void {
    if (this.live.phase === 'warmup' || this.live.phase === 'measure') {
      this.enterMeasure();
      this.live.phase = 'drain';
      this.options.onPhase?.('drain');
    }
  }

  /** Runs one operation; `startMs` is where its latency is measured from. */
  private async execute(startMs: number, measured: boolean): Promise<void> {
    let op;
    try {
      op = this.source.next();
      await op.run(this.target);
    } catch (err) {
      this.complete(measured);
      if (!measured) {
        this.warmupErrors++;
        return;
      }
      this.errors++;
      const kind = errorKind(err);
      this.errorsByKind[kind] = (this.errorsByKind[kind] ?? 0) + 1;
      return;
    }
    const endMs = this.complete(measured);
    if (!measured) return;
    this.ops++;
    let h = this.histograms.get(op.type);
    if (!h) this.histograms.set(op.type, (h = new LatencyHistogram()));
    h.recordUs((endMs - startMs) * 1000);
  }

  private complete(measured: boolean): number {
    const now = this.clock.nowMs();
    if (measured) {
      this.live.completed++;
      if (now > this.lastCompletionMs) this.lastCompletionMs = now;
    } else {
      this.live.warmupCompleted++;
    }
    return now;
  }

  private async closedLoop(): Promise<void> {
    const endMs = this.endMs();
    const opsMax = this.options.ops ?? Infinity;
    let issued = 0;
    const worker = async (): Promise<void> => {
      let lastYieldMs = this.clock.nowMs();
      for (;;) {
        const start = this.clock.nowMs();
        const measured = start >= this.warmupEndMs;
        if (measured) {
          this.enterMeasure();
          if (start >= endMs || issued >= opsMax) {
            this.enterDrain();
            return;
          }
          issued++;
        }
        await this.execute(start, measured);
        if (start - lastYieldMs >= YIELD_EVERY_MS) {
          // An op that resolves without I/O would otherwise starve timers (progress, other workers' clocks).
          await yieldToLoop();
          lastYieldMs = this.clock.nowMs();
        }
      }
    };
    await Promise.all(Array.from({ length: this.options.concurrency }, worker));
  }

  private async openLoop(t0: number, ratePerSec: number): Promise<ScheduleStats> {
    const intervalMs = 1000 / ratePerSec;
    const endMs = this.endMs();
    const opsMax = this.options.ops ?? Infinity;
    const maxOutstanding = this.options.concurrency;
    const stats: ScheduleStats = { sent: 0, waitedForSlot: 0, clientLate: 0, maxLagMs: 0, unsent: 0 };
    let outstanding = 0;
    let next = 0; // index of the next intended send
    let measuredIssued = 0;
    let slotFreed: (() => void) | null = null;
    const inFlight = new Set<Promise<void>>();
    let slotsWereFull = false;

    for (;;) {
      const now = this.clock.nowMs();
      let intended = t0 + next * intervalMs;
      let done = false;
      while (intended <= now + SEND_AHEAD_MS) {
        const measured = intended >= this.warmupEndMs;
        if (measured) {
          this.enterMeasure();
          if (intended >= endMs || measuredIssued >= opsMax) {
            done = true;
            break;
          }
        }
        if (outstanding >= maxOutstanding) {
          slotsWereFull = true;
          break;
        }
        const sendMs = this.clock.nowMs();
        const lagMs = sendMs - intended;
        if (measured) {
          measuredIssued++;
          stats.sent++;
          if (lagMs > stats.maxLagMs) stats.maxLagMs = lagMs;
          if (slotsWereFull && lagMs > 0) stats.waitedForSlot++;
          else if (lagMs > CLIENT_LATE_MS) stats.clientLate++;
        }
        outstanding++;
        // Sent early (timer granularity): measure from the send; sent late: from the intended time.
        const p = this.execute(Math.min(sendMs, intended), measured).finally(() => {
          outstanding--;
          inFlight.delete(p);
          const wake = slotFreed;
          slotFreed = null;
          wake?.();
        });
        inFlight.add(p);
        next++;
        intended = t0 + next * intervalMs;
      }
      if (outstanding < maxOutstanding) slotsWereFull = false;
      if (done) break;
      if (this.clock.nowMs() >= endMs) {
        // Due but never sent: the target kept every slot busy until the end.
        stats.unsent = Math.max(0, Math.ceil((endMs - Math.max(intended, this.warmupEndMs)) / intervalMs));
        break;
      }
      if (outstanding >= maxOutstanding) {
        // Whatever falls due before a slot frees waits for it (the target's delay, not the client's).
        slotsWereFull = true;
        await new Promise<void>((resolve) => (slotFreed = resolve));
      } else {
        const waitMs = Math.max(0, intended - this.clock.nowMs() - SEND_AHEAD_MS);
        await new Promise<void>((resolve) => {
          const timer = this.clock.setTimer(waitMs, resolve);
          // Let a freed slot also wake us: it may matter when the schedule is behind.
          slotFreed = () => {
            timer.cancel();
            resolve();
          };
        });
        slotFreed = null;
      }
    }
    this.enterDrain();
    await Promise.all(inFlight);
    return stats;
  }
}
