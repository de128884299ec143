/**
 * When `ragkv local-cluster` restarts a member that exited on its own: after `delayMs`,
 * doubling with each restart in a row (up to `delayMaxMs`), and not at all once `restartsMax`
 * restarts in a row have each exited again within `stableMs` of starting. A member that ran
 * `stableMs` or longer before exiting starts the count again. Pure: the caller says how long
 * the member ran, so tests need no clock.
 */
export interface RestartPolicyOptions {
  /** Delay before the first restart in a row. */
  delayMs: number;
  /** The doubling delay stops growing here. */
  delayMaxMs: number;
  /** Restarts in a row (each exiting within `stableMs`) before the member is left down; 0: never restart. */
  restartsMax: number;
  /** A member that ran this long before exiting was doing fine: the count starts again. */
  stableMs: number;
}

export type RestartDecision =
  /** Restart after `delayMs`; this is restart number `restartsInRow` in a row. */
  | { restart: true; delayMs: number; restartsInRow: number }
  /** Leave the member down: `restartsInRow` restarts in a row all exited quickly. */
  | { restart: false; restartsInRow: number };

/** One member's restart decisions (one instance per member). */
export class RestartPolicy {
  private inRow = 0;

  constructor(private readonly options: RestartPolicyOptions) {
    const { delayMs, delayMaxMs, restartsMax, stableMs } = options;
    if (!(Number.isSafeInteger(delayMs) && delayMs >= 0)) throw new RangeError(`'delayMs' must be a non-negative integer, got ${delayMs}`);
    if (!(Number.isSafeInteger(delayMaxMs) && delayMaxMs >= delayMs)) throw new RangeError(`'delayMaxMs' must be an integer >= 'delayMs' (${delayMs}), got ${delayMaxMs}`);
    if (!(Number.isSafeInteger(restartsMax) && restartsMax >= 0)) throw new RangeError(`'restartsMax' must be a non-negative integer, got ${restartsMax}`);
    if (!(Number.isSafeInteger(stableMs) && stableMs > 0)) throw new RangeError(`'stableMs' must be a positive integer, got ${stableMs}`);
  }

  /** The member exited on its own after running `ranMs`: restart it (after a delay) or leave it down. */
  onExit(ranMs: number): RestartDecision {
    if (ranMs >= this.options.stableMs) this.inRow = 0;
    if (this.inRow >= this.options.restartsMax) return { restart: false, restartsInRow: this.inRow };
    const delayMs = Math.min(this.options.delayMaxMs, this.options.delayMs * 2 ** this.inRow);
    this.inRow++;
    return { restart: true, delayMs, restartsInRow: this.inRow };
  }
}
