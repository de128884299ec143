/**
 * The unsent reply bytes of all clients of one server, held under `outputBuffersTotalBytesMax`.
 *
 * Each client counts its socket's unsent bytes after it writes and when the socket drains;
 * nothing is counted per request. A queue only grows when its client writes, so the sum of
 * the counts is at least the true total: when it goes over the limit, the budget recounts
 * every client exactly, then disconnects the clients holding the most until it is under.
 */

/** A client as the budget sees it (implemented by Connection). */
export interface OutputHolder {
  /** Unsent bytes as last counted; owned by the budget. */
  outputCounted: number;
  /** Unsent reply bytes now (0 once disconnected). */
  outputPending(): number;
  /** Disconnects the client for `reason` (a limit's name); calls `release`. */
  disconnect(reason: string): void;
}

export class OutputBudget {
  private readonly holders: Iterable<OutputHolder>;
  private readonly totalMax: number;
  private counted = 0;

  constructor(holders: Iterable<OutputHolder>, totalMax: number) {
    this.holders = holders;
    this.totalMax = totalMax;
  }

  /** Sum of the last counts: at least the unsent bytes of all clients. */
  get bytes(): number {
    return this.counted;
  }

  /** Counts `holder`'s unsent bytes as `pending`; over the total, disconnects the largest holders. */
  count(holder: OutputHolder, pending: number): void {
    this.counted += pending - holder.outputCounted;
    holder.outputCounted = pending;
    if (this.counted > this.totalMax) this.shed();
  }

  /** Takes a disconnected or closed client's bytes out of the total. */
  release(holder: OutputHolder): void {
    this.counted -= holder.outputCounted;
    holder.outputCounted = 0;
  }

  private shed(): void {
    // Counts are stale where a queue shrank unseen: recount before disconnecting anyone.
    let total = 0;
    for (const h of this.holders) {
      const pending = h.outputPending();
      h.outputCounted = pending;
      total += pending;
    }
    this.counted = total;
    while (this.counted > this.totalMax) {
      let largest: OutputHolder | null = null;
      for (const h of this.holders) if (largest === null || h.outputCounted > largest.outputCounted) largest = h;
      if (largest === null || largest.outputCounted === 0) {
        throw new Error(`output budget counts ${this.counted} bytes but no client holds any`);
      }
      const before = this.counted;
      largest.disconnect('outputBuffersTotalBytesMax');
      if (this.counted >= before) throw new Error('a disconnected client did not release its output bytes');
    }
  }
}
