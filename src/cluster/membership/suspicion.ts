/**
 * A suspicion timer, as in memberlist's suspicion.go (from Lifeguard): it starts at the
 * maximum timeout and shrinks toward the minimum as independent members confirm the
 * suspicion, so a member many others cannot reach is declared dead sooner, while a member
 * only one slow prober suspects gets longer to refute.
 */
import type { Clock, Timer } from '../../common/clock.js';
import type { NodeId } from '../transport.js';

/** Timeout after `confirmations` of `expected` confirmations (ms). */
export function suspicionTimeoutMs(minMs: number, maxMs: number, confirmations: number, expected: number): number {
  if (expected <= 0) return minMs;
  const frac = Math.log(confirmations + 1) / Math.log(expected + 1);
  return Math.max(minMs, Math.floor(maxMs - frac * (maxMs - minMs)));
}

/** One member's running suspicion. */
export class Suspicion {
  private readonly confirmers = new Set<NodeId>();
  private readonly startMs: number;
  private timer: Timer;
  private fired = false;

  /**
   * `from` is the first suspecter (it counts as no confirmation); `expected` is how many
   * confirmations would bring the timeout to `minMs`; `onTimeout` runs once.
   */
  constructor(
    private readonly clock: Clock,
    from: NodeId,
    private readonly expected: number,
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly onTimeout: () => void,
  ) {
    this.confirmers.add(from);
    this.startMs = clock.nowMs();
    this.timer = clock.setTimer(suspicionTimeoutMs(minMs, maxMs, 0, expected), () => this.fire());
  }

  /** Counts a confirmation from another member; returns true when it is new (worth re-gossiping). */
  confirm(from: NodeId): boolean {
    if (this.fired || this.confirmers.has(from)) return false;
    if (this.confirmers.size - 1 >= this.expected) return false;
    this.confirmers.add(from);
    const timeoutMs = suspicionTimeoutMs(this.minMs, this.maxMs, this.confirmers.size - 1, this.expected);
    const remainingMs = this.startMs + timeoutMs - this.clock.nowMs();
    this.timer.cancel();
    this.timer = this.clock.setTimer(Math.max(0, remainingMs), () => this.fire());
    return true;
  }

  /** Stops the timer (the member refuted, or was declared dead another way). */
  cancel(): void {
    this.fired = true;
    this.timer.cancel();
  }

  private fire(): void {
    if (this.fired) return;
    this.fired = true;
    this.onTimeout();
  }
}
