import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Driver, errorKind } from '../tools/loadgen/driver.js';
import type { RecordFields, Target } from '../tools/loadgen/target.js';
import type { Operation, OperationSource } from '../tools/loadgen/workloads.js';

/**
 * A real (tiny) Target over a Map: the driver is under test, not a store. `gate`, when set,
 * makes the next get wait for it (a stalled server).
 */
class MemoryTarget implements Target {
  readonly name = 'memory';
  readonly values = new Map<string, Buffer>();
  served = 0;
  gate: Promise<void> | null = null;
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
    this.served++;
    return this.values.get(key) ?? null;
  }
  async getMany(keys: string[]): Promise<(Buffer | null)[]> {
    return Promise.all(keys.map((k) => this.get(k)));
  }
  async put(key: string, value: Buffer): Promise<void> {
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
    const t = new MemoryTarget();
    const phases: string[] = [];
    const r = await new Driver(t, readWrite(), { concurrency: 2, ops: 300, warmupMs: 50, onPhase: (p) => phases.push(p) }).run();
    assert.ok(r.warmupOps > 0, 'operations ran during the warm-up');
    assert.equal(t.served, r.warmupOps + 300);
    assert.equal(r.ops, 300);
    assert.equal(total(r), 300);
    assert.deepEqual(phases, ['measure', 'drain']);
  });

  it('stops after --duration', async () => {
    const t = new MemoryTarget();
    const r = await new Driver(t, readWrite(), { concurrency: 2, durationMs: 100 }).run();
    assert.ok(r.measuredMs >= 95 && r.measuredMs < 2000, `measured ${r.measuredMs} ms`);
    assert.ok(r.ops > 100);
    assert.equal(total(r), r.ops);
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
  it('measures from the intended send time, so a stall shows in everything due during it', async () => {
    const t = new MemoryTarget();
    const stallMs = 60;
    let release!: () => void;
    t.gate = new Promise<void>((resolve) => (release = resolve));
    const stall = setTimeout(() => release(), stallMs);
    // 1000/s with one slot: ~60 operations fall due while the first one is stuck.
    const r = await new Driver(t, { next: () => ({ type: 'read', run: async (target) => void (await target.get('k')) }) }, { concurrency: 1, ratePerSec: 1000, ops: 100 }).run();
    clearTimeout(stall);
    assert.equal(r.mode, 'open');
    assert.equal(r.ops, 100);
    const h = r.histograms.get('read')!;
    // Service times are ~0 except the first; latency from the intended time is not.
    assert.ok(h.percentileUs(100) >= (stallMs - 5) * 1000, `max ${h.percentileUs(100)} us`);
    assert.ok(h.percentileUs(75) >= 15_000, `p75 ${h.percentileUs(75)} us must include queueing behind the stall`);
    assert.ok(r.schedule!.waitedForSlot >= 40, `${r.schedule!.waitedForSlot} sends waited for the stalled slot`);
    assert.equal(r.schedule!.sent, 100);
  });

  it('keeps to the rate and bounds outstanding operations', async () => {
    const t = new MemoryTarget();
    let outstanding = 0;
    let maxOutstanding = 0;
    const source: OperationSource = {
      next: () => ({
        type: 'read',
        run: async (target) => {
          outstanding++;
          maxOutstanding = Math.max(maxOutstanding, outstanding);
          await new Promise<void>((resolve) => setImmediate(resolve));
          await target.get('k');
          outstanding--;
        },
      }),
    };
    const r = await new Driver(t, source, { concurrency: 8, ratePerSec: 2000, ops: 300 }).run();
    const rate = r.ops / (r.measuredMs / 1000);
    assert.ok(rate < 2400 && rate > 1000, `rate ${rate.toFixed(0)}/s for 2000/s`);
    assert.ok(maxOutstanding <= 8);
    assert.equal(r.ops, 300);
  });

  it('counts what was due but never sent when the target stays stuck', async () => {
    const t = new MemoryTarget();
    let release!: () => void;
    t.gate = new Promise<void>((resolve) => (release = resolve));
    const stall = setTimeout(() => release(), 150);
    const r = await new Driver(t, { next: () => ({ type: 'read', run: async (target) => void (await target.get('k')) }) }, { concurrency: 1, ratePerSec: 1000, durationMs: 100 }).run();
    clearTimeout(stall);
    // Stuck for the whole window: one send, the rest (~99) due but unsent.
    assert.ok(r.schedule!.unsent >= 80, `unsent ${r.schedule!.unsent}`);
    assert.ok(r.schedule!.sent <= 5);
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
