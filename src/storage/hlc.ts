import { type Version, logicalPerMs } from './version.js';

/** Wall time source; injected so tests and the simulator control time. */
export interface Clock {
  nowMs(): number;
}

export { systemClock } from '../common/clock.js';

/**
 * Hybrid logical clock: versions are unique per node, strictly increasing, and close to
 * wall time. `observe` moves it past versions seen from elsewhere (or persisted before a
 * restart), so a node whose wall clock went backwards still stamps newer versions.
 */
export class HybridClock {
  private lastTs = 0;
  constructor(
    private readonly clock: Clock,
    readonly nodeId: number,
  ) {}

  now(): Version {
    const wall = this.clock.nowMs() * logicalPerMs;
    this.lastTs = wall > this.lastTs ? wall : this.lastTs + 1;
    return { ts: this.lastTs, node: this.nodeId };
  }

  observe(v: Version): void {
    if (v.ts > this.lastTs) this.lastTs = v.ts;
  }

  /** Highest timestamp issued or observed. */
  get highTs(): number {
    return this.lastTs;
  }
}
