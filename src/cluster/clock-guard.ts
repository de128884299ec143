/**
 * Whether this member may coordinate writes, judged by its clock against its peers'
 * (membership/clock-check.ts): a member whose clock is too far from the others' stops
 * coordinating writes (they would carry versions that lose to, or win over, every honest
 * write), says why in the error, in /ready and in metrics, and resumes once it agrees again.
 */
import { KvError } from '../common/errors.js';
import type { Clock } from '../common/clock.js';
import type { ClockVerdict } from './membership/clock-check.js';
import type { Swim } from './membership/swim.js';

/** How long a verdict is reused before it is worked out again (writes ask on every call). */
const verdictTtlMs = 100;
/** How long a write waits for this member's first clock measurement before it is refused. */
export const clockCheckWaitMs = 2000;

export class ClockGuard {
  private verdict: ClockVerdict = { state: 'ok', offsetMs: 0, measured: 0, far: 0 };
  private verdictAtMs = Number.NEGATIVE_INFINITY;
  private refusalError: KvError | null = null;

  constructor(
    private readonly swim: Swim,
    private readonly clock: Clock,
    private readonly maxOffsetMs: number,
    /** Called when the verdict's state changes (for the log). */
    private readonly onChange: (verdict: ClockVerdict) => void = () => {},
  ) {}

  /** The current verdict (recomputed at most every `verdictTtlMs`, or now when `fresh`). */
  current(fresh = false): ClockVerdict {
    const now = this.clock.nowMs();
    // Reused only while the clock moves forward within the TTL: a clock stepped back (NTP, a
    // restored VM) is judged again at once.
    if (!fresh && now >= this.verdictAtMs && now - this.verdictAtMs < verdictTtlMs) return this.verdict;
    this.verdictAtMs = now;
    const self = this.swim.id;
    const live = (id: string) => {
      const s = this.swim.member(id)?.status;
      return s === 'alive' || s === 'suspect';
    };
    // Dead members count as known (not measured): with one dead and one skewed peer in three,
    // a healthy member cannot tell who is right, and must not call itself the skewed one.
    const peersKnown = this.swim.members().filter((m) => m.id !== self && m.status !== 'left').length;
    const next = this.swim.clocks.verdict(now, this.maxOffsetMs, live, peersKnown);
    const changed = next.state !== this.verdict.state;
    this.verdict = next;
    this.refusalError = this.errorFor(next);
    if (changed) this.onChange(next);
    return next;
  }

  /** The error while this member's clock is known to be off (it is out of service); null otherwise, "not compared yet" included. */
  skewedRefusal(): KvError | null {
    return this.current().state === 'skewed' ? this.refusalError : null;
  }

  /**
   * For the write path: null when this member may coordinate writes, the error when it may
   * not, and while its clock has not been compared yet (just started, peers just learned), a
   * promise that waits up to `clockCheckWaitMs` for the first measurement.
   */
  admit(): KvError | null | Promise<void> {
    const v = this.current();
    if (v.state !== 'unchecked') return this.refusalError;
    // Every write that waits shares one wait (one timer), settled at the next measurement.
    this.waiting ??= new Promise<void>((resolve, reject) => {
      let done = false;
      const settle = () => {
        if (done) return;
        done = true;
        timer.cancel();
        this.waiting = null;
        this.current(true);
        if (this.refusalError) reject(this.refusalError);
        else resolve();
      };
      const timer = this.clock.setTimer(clockCheckWaitMs, settle);
      void this.swim.clocks.nextSample().then(settle);
    });
    return this.waiting;
  }

  private waiting: Promise<void> | null = null;

  private errorFor(v: ClockVerdict): KvError | null {
    if (v.state === 'ok') return null;
    if (v.state === 'unchecked') {
      return new KvError('CLOCK_SKEW', "this member has not yet compared its clock with its peers': it coordinates writes once it has (retry, or write through another member)");
    }
    const ms = Math.round(-v.offsetMs);
    return new KvError(
      'CLOCK_SKEW',
      `this member's clock is ${ms > 0 ? '+' : ''}${ms} ms from its peers' (${v.far} of ${v.measured} beyond limit 'maxClockOffsetMs' (${this.maxOffsetMs})): ` +
        'it does not coordinate writes until its clock is corrected; write through another member',
    );
  }
}
