/**
 * The load generator's driver. Tests about time (duration, warm-up, open-loop schedule,
 * stalls) run on a simulated clock (testing/sim's SimClock), where an operation takes the
 * simulated time the target says and nothing depends on how busy the machine is: they assert
 * exact counts and latencies. Tests about counts alone also run on the default (real) clock.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sleep } from '../src/common/clock.js';
import { drainMicrotasks, SimClock } from '../testing/sim/index.js';
import { Driver, errorKind, type DriverOptions, type DriverResult } from '../tools/loadgen/driver.js';
import type { RecordFields, Target } from '../tools/loadgen/target.js';
import type { Operation, OperationSource } from '../tools/loadgen/workloads.js';

/**
 * A real (tiny) Target over a Map: the driver is under test, not a store. With a clock, every
 * get and put takes `serviceMs` of that clock's time. `gate`, when set, makes the next get
 * wait for it (a stalled server).
 */
class MemoryTarget implements Target {
  readonly name = 'memory';
  readonly values = new Map<string, Buffer>();
  served = 0;
  gate: Promise<void> | null = null;
  constructor(private readonly sim?: { clock: SimClock; serviceMs: number }) {}
  private async service(): Promise<void> {
    if (this.sim && this.sim.serviceMs > 0) await sleep(this.sim.clock, this.sim.serviceMs);
  }
  describe(): string {
    return 'in-memory Map';
  }
  async insertRecord(): Promise<void> {}
  async readRecord(): Promise<RecordFields | null> {
    return null;
  }
  async updateFields(): Promise<void> {}
  async scanRecords(): Promise<number> {
    return 0;
  }
  async get(key: string): Promise<Buffer | null> {
    const gate = this.gate;
    this.gate = null;
    if (gate) await gate;
    await this.service();
    this.served++;
    return this.values.get(key) ?? null;
  }
  async getMany(keys: string[]): Promise<(Buffer | null)[]> {
    return Promise.all(keys.map((k) => this.get(k)));
  }
  async put(key: string, value: Buffer): Promise<void> {
    await this.service();
    this.served++;
    this.values.set(key, value);
  }
  async append(): Promise<void> {}
  async close(): Promise<void> {}
}

/** Alternating reads and writes of one key. */
const readWrite = (): OperationSource => {
  let i = 0;
  return {
    next: (): Operation =>
      i++ % 2 === 0
        ? { type: 'read', run: async (t) => void (await t.get('k')) }
        : { type: 'write', run: (t) => t.put('k', Buffer.from('v')) },
  };
};

/**
 * Runs `options` on `clock`: fires the simulated timers in order until the run resolves
 * (bounded, so a driver that never finishes fails the test instead of hanging it).
 */
async function runSimulated(clock: SimClock, target: Target, source: OperationSource, options: Omit<DriverOptions, 'clock'>): Promise<DriverResult> {
  let result: DriverResult | undefined;
  let failure: unknown;
  let failed = false;
  new Driver(target, source, { ...options, clock }).run().then(
    (r) => (result = r),
    (err: unknown) => {
      failure = err;
      failed = true;
    },
  );
  for (let turns = 0; result === undefined && !failed; turns++) {
    assert.ok(turns < 1_000_000, `the driver did not finish; simulated time ${clock.nowMs()} ms`);
    // A turn with no timer pending lets a driver that yielded to the event loop go on.
    if (!(await clock.step())) await drainMicrotasks();
  }
  if (failed) throw failure;
  return result!;
}

/** Every latency the histogram holds is `ms` (to HdrHistogram's 3 significant digits). */
function assertAllLatencies(h: { percentileUs(p: number): number }, ms: number): void {
  const us = ms * 1000;
  for (const p of [0, 50, 100]) {
    const v = h.percentileUs(p);
    assert.ok(Math.abs(v - us) <= us / 1000, `p${p} ${v} us, want ${us}`);
  }
}

function total(result: { histograms: Map<string, { count: number }> }): number {
  let n = 0;
  for (const h of result.histograms.values()) n += h.count;
  return n;
}

describe('Driver, closed loop', () => {
  it('runs exactly --ops measured operations, split into per-type histograms', async () => {
    const t = new MemoryTarget();
    const r = await new Driver(t, readWrite(), { concurrency: 4, ops: 500 }).run();
    assert.equal(r.mode, 'closed');
    assert.equal(r.ops, 500);
    assert.equal(t.served, 500);
    assert.equal(r.histograms.get('read')!.count, 250);
    assert.equal(r.histograms.get('write')!.count, 250);
    assert.equal(r.errors, 0);
  });

  it('excludes the warm-up from the results', async () => {
    const clock = new SimClock({ startMs: 1_000 });
    const t = new MemoryTarget({ clock, serviceMs: 1 });
    const phases: string[] = [];
    const r = await runSimulated(clock, t, readWrite(), { concurrency: 2, ops: 300, warmupMs: 50, onPhase: (p) => phases.push(p) });
    // 2 workers, 1 ms per operation: 50 ms of warm-up is 100 operations, then 300 measured.
    assert.equal(r.warmupOps, 100);
    assert.equal(t.served, 400);
    assert.equal(r.ops, 300);
    assert.equal(total(r), 300);
    assert.equal(r.measuredMs, 150);
    assert.deepEqual(phases, ['measure', 'drain']);
  });

  it('stops after --duration, on the injected clock', async () => {
    const clock = new SimClock({ startMs: 1_000 });
    const t = new MemoryTarget({ clock, serviceMs: 1 });
    const r = await runSimulated(clock, t, readWrite(), { concurrency: 2, durationMs: 100 });
    // 2 workers, 1 ms per operation: each sends 100 within the 100 ms, none after.
    assert.equal(r.measuredMs, 100);
    assert.equal(r.ops, 200);
    assert.equal(t.served, 200);
    assert.equal(r.histograms.get('read')!.count, 100);
    assert.equal(r.histograms.get('write')!.count, 100);
    assertAllLatencies(r.histograms.get('read')!, 1);
    assertAllLatencies(r.histograms.get('write')!, 1);
    assert.equal(clock.nowMs(), 1_100, 'the run ended with the last completion');
  });

  it('counts errors by kind and keeps them out of the histograms', async () => {
    const t = new MemoryTarget();
    let i = 0;
    const source: OperationSource = {
      next: () => {
        const n = i++;
        return {
          type: 'read',
          run: async (target) => {
            if (n % 3 === 0) throw Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' });
            if (n % 3 === 1) throw new Error('OVERLOADED: queue full, retry');
            await target.get('k');
          },
        };
      },
    };
    const r = await new Driver(t, source, { concurrency: 3, ops: 300 }).run();
    assert.equal(r.errors, 200);
    assert.deepEqual(r.errorsByKind, { ETIMEDOUT: 100, OVERLOADED: 100 });
    assert.equal(r.ops, 100);
    assert.equal(total(r), 100);
  });

  it('names errors by code, leading upper-case word, or class', () => {
    assert.equal(errorKind(Object.assign(new Error('x'), { code: 'ECONNRESET' })), 'ECONNRESET');
    assert.equal(errorKind(new Error('WRONGTYPE Operation against a key')), 'WRONGTYPE');
    assert.equal(errorKind(new TypeError('bad')), 'TypeError');
    assert.equal(errorKind('oops'), 'string');
  });
});

describe('Driver, open loop', () => {
  const readK = (): OperationSource => ({ next: () => ({ type: 'read', run: async (target) => void (await target.get('k')) }) });

  it('measures from the intended send time, so a stall shows in everything due during it', async () => {
    const clock = new SimClock({ startMs: 1_000 });
    const t = new MemoryTarget({ clock, serviceMs: 0 });
    const stallMs = 60;
    t.gate = new Promise<void>((resolve) => clock.setTimer(stallMs, resolve));
    // 1000/s with one slot: operations 1..60 fall due while operation 0 is stuck.
    const r = await runSimulated(clock, t, readK(), { concurrency: 1, ratePerSec: 1000, ops: 100 });
    assert.equal(r.mode, 'open');
    assert.equal(r.ops, 100);
    const h = r.histograms.get('read')!;
    // Service takes no time; latency from the intended time is the wait behind the stall:
    // operation 0 waited 60 ms, operation k in 1..60 (due at k ms, sent at 60 ms) 60 - k ms,
    // the 39 after them 0. So the 50th of the 100 is 10 ms, the 69th 29 ms, the 100th 60 ms.
    const near = (us: number, want: number): boolean => Math.abs(us - want) <= want / 1000; // HdrHistogram: 3 digits
    for (const [p, ms] of [[50, 10], [69, 29], [100, stallMs]] as const) {
      assert.ok(near(h.percentileUs(p), ms * 1000), `p${p} ${h.percentileUs(p)} us, want ${ms} ms`);
    }
    assert.equal(r.schedule!.waitedForSlot, 59, 'operations 1..59 were sent late because the slot was busy');
    assert.equal(r.schedule!.clientLate, 0);
    assert.equal(r.schedule!.maxLagMs, 59);
    assert.equal(r.schedule!.sent, 100);
  });

  /** Reads of `k` that record when each one was sent and how many were outstanding at most. */
  const recordingSource = (clock: SimClock): OperationSource & { sentAtMs: number[]; maxOutstanding: number } => {
    let outstanding = 0;
    const source = {
      sentAtMs: [] as number[],
      maxOutstanding: 0,
      next: (): Operation => ({
        type: 'read',
        run: async (target: Target) => {
          source.sentAtMs.push(clock.nowMs());
          outstanding++;
          source.maxOutstanding = Math.max(source.maxOutstanding, outstanding);
          await target.get('k');
          outstanding--;
        },
      }),
    };
    return source;
  };

  it('keeps to the rate: each operation is sent at its intended time (up to 1 ms early)', async () => {
    const clock = new SimClock({ startMs: 1_000 });
    const t = new MemoryTarget({ clock, serviceMs: 1 });
    const source = recordingSource(clock);
    const r = await runSimulated(clock, t, source, { concurrency: 8, ratePerSec: 2000, ops: 300 });
    assert.equal(r.ops, 300);
    // Operation k is due at k × 0.5 ms; a wake-up sends what is due within the next 1 ms.
    assert.deepEqual(source.sentAtMs, Array.from({ length: 300 }, (_, k) => 1_000 + Math.max(0, k * 0.5 - 1)));
    // The last one was sent at 148.5 ms and took 1 ms.
    assert.equal(r.measuredMs, 149.5);
    assert.equal(source.maxOutstanding, 4);
    assert.deepEqual(r.schedule, { sent: 300, waitedForSlot: 0, clientLate: 0, maxLagMs: 0, unsent: 0 });
    assertAllLatencies(r.histograms.get('read')!, 1);
  });

  it('bounds outstanding operations by --concurrency when the target is slower than the rate', async () => {
    const clock = new SimClock({ startMs: 1_000 });
    const t = new MemoryTarget({ clock, serviceMs: 10 });
    const source = recordingSource(clock);
    const r = await runSimulated(clock, t, source, { concurrency: 8, ratePerSec: 2000, ops: 300 });
    assert.equal(r.ops, 300);
    assert.equal(source.maxOutstanding, 8);
    // 8 slots of 10 ms each: the first 8 go out on time (0 to 2.5 ms), then each slot sends its
    // next one when its last completes. Operation 299 is slot 3's 38th: sent at 370.5 ms.
    assert.equal(r.measuredMs, 380.5);
    assert.equal(r.schedule!.sent, 300);
    // Every operation after the first 8 waited for a slot; none counts as the client's lateness,
    // also operation 8, which fell due after the slots had filled.
    assert.equal(r.schedule!.waitedForSlot, 292);
    assert.equal(r.schedule!.clientLate, 0);
  });

  it('counts what was due but never sent when the target stays stuck', async () => {
    const clock = new SimClock({ startMs: 1_000 });
    const t = new MemoryTarget({ clock, serviceMs: 0 });
    t.gate = new Promise<void>((resolve) => clock.setTimer(150, resolve));
    const r = await runSimulated(clock, t, readK(), { concurrency: 1, ratePerSec: 1000, durationMs: 100 });
    // Operation 0 is stuck past the 100 ms window. When it completes, operation 1 (due at 1 ms)
    // goes out, and the other 98 due in the window are counted as never sent.
    assert.equal(r.schedule!.sent, 2);
    assert.equal(r.schedule!.unsent, 98);
    assert.equal(r.ops, 2);
  });
});

describe('Driver options', () => {
  it('rejects nonsense with a precise error', () => {
    const t = new MemoryTarget();
    assert.throws(() => new Driver(t, readWrite(), { concurrency: 0, ops: 1 }), /'concurrency' must be a positive integer/);
    assert.throws(() => new Driver(t, readWrite(), { concurrency: 1 }), /give 'durationMs' or 'ops'/);
    assert.throws(() => new Driver(t, readWrite(), { concurrency: 1, ops: 1, ratePerSec: -1 }), /'ratePerSec'/);
  });
});
