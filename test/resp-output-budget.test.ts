/**
 * OutputBudget: the unsent reply bytes of all RESP clients under outputBuffersTotalBytesMax.
 * Holders here are plain objects whose `pending` plays the socket's unsent bytes; the server
 * test (resp-limits) shows the same over real sockets.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OutputBudget, type OutputHolder } from '../src/server/resp/output-budget.js';

class Holder implements OutputHolder {
  outputCounted = 0;
  disconnectedFor: string | null = null;
  constructor(
    readonly budget: () => OutputBudget,
    public pending: number,
  ) {}
  outputPending(): number {
    return this.disconnectedFor === null ? this.pending : 0;
  }
  disconnect(reason: string): void {
    this.disconnectedFor = reason;
    this.budget().release(this);
  }
  /** Plays a write: the queue grows and the connection counts it. */
  write(bytes: number): void {
    this.pending += bytes;
    this.budget().count(this, this.pending);
  }
}

function setup(totalMax: number, count: number): { budget: OutputBudget; holders: Holder[] } {
  const holders: Holder[] = [];
  const budget = new OutputBudget(holders, totalMax);
  for (let i = 0; i < count; i++) holders.push(new Holder(() => budget, 0));
  return { budget, holders };
}

describe('OutputBudget', () => {
  it('sums the counts; a release takes a holder out', () => {
    const { budget, holders } = setup(1000, 3);
    holders[0]!.write(300);
    holders[1]!.write(400);
    holders[2]!.write(300);
    assert.equal(budget.bytes, 1000, 'at the limit is not over it');
    assert.deepEqual(holders.map((h) => h.disconnectedFor), [null, null, null]);
    holders[1]!.pending = 0; // drained
    budget.count(holders[1]!, 0);
    assert.equal(budget.bytes, 600);
    budget.release(holders[0]!);
    assert.equal(budget.bytes, 300);
  });

  it('over the total, disconnects the holder with the most, naming the limit', () => {
    const { budget, holders } = setup(1000, 3);
    holders[0]!.write(300);
    holders[1]!.write(500);
    holders[2]!.write(201); // 1001: over by one
    assert.deepEqual(holders.map((h) => h.disconnectedFor), [null, 'outputBuffersTotalBytesMax', null]);
    assert.equal(budget.bytes, 501);
  });

  it('the holder with the most may be another than the one that wrote, and one disconnect is enough', () => {
    const { budget, holders } = setup(1000, 3);
    holders[0]!.write(100);
    holders[1]!.write(450);
    holders[2]!.write(440); // 990
    holders[0]!.write(300); // 1290: holder 1 (450) goes, the writer (400) stays
    assert.deepEqual(holders.map((h) => h.disconnectedFor), [null, 'outputBuffersTotalBytesMax', null]);
    assert.equal(budget.bytes, 840);
  });

  it('the writer itself goes when it holds the most', () => {
    const { budget, holders } = setup(1000, 2);
    holders[0]!.write(400);
    holders[1]!.write(500);
    holders[1]!.write(200); // 1100
    assert.deepEqual(holders.map((h) => h.disconnectedFor), [null, 'outputBuffersTotalBytesMax']);
    assert.equal(budget.bytes, 400);
  });

  it('recounts stale counts before disconnecting anyone', () => {
    const { budget, holders } = setup(1000, 2);
    holders[0]!.write(600);
    holders[0]!.pending = 0; // written out without a count (no drain event)
    holders[1]!.write(600); // counted 1200, true total 600
    assert.deepEqual(holders.map((h) => h.disconnectedFor), [null, null]);
    assert.equal(budget.bytes, 600);
  });
});
