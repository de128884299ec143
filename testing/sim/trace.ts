/**
 * The simulator's flight recorder: every event of a simulated world (timer, send, deliver,
 * drop, crash...) goes into a bounded ring buffer that a failing test prints, and into a
 * running digest over *all* events, so two runs can be compared exactly even after the ring
 * has wrapped.
 */

/** What happened. */
export type SimEventKind =
  | 'timer'
  | 'send'
  | 'deliver'
  | 'drop'
  | 'duplicate'
  | 'reply'
  | 'timeout'
  | 'unreachable'
  | 'crash'
  | 'restart'
  | 'close'
  | 'partition'
  | 'heal'
  | 'note';

/** One recorded event. Fields that do not apply are empty strings or -1. */
export interface SimEvent {
  /** Position in the whole run (0 = first event ever recorded). */
  readonly seq: number;
  /** Simulated time, ms. */
  readonly atMs: number;
  readonly kind: SimEventKind;
  readonly from: string;
  readonly to: string;
  readonly channel: number;
  readonly bytes: number;
  /** Free text: a drop reason, a timer label, a request id. */
  readonly note: string;
}

/** Default number of events the ring keeps. */
export const simTraceCapacityDefault = 10_000;

/** A bounded ring of SimEvents plus an FNV-1a digest over every event ever recorded. */
export class SimTrace {
  readonly capacity: number;
  private readonly ring: (SimEvent | undefined)[];
  private count = 0;
  private hash = 0x811c9dc5;

  constructor(capacity = simTraceCapacityDefault) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(`'capacity' must be a positive integer, got ${capacity}`);
    }
    this.capacity = capacity;
    this.ring = new Array<SimEvent | undefined>(capacity);
  }

  /** Records an event. */
  record(atMs: number, kind: SimEventKind, from = '', to = '', channel = -1, bytes = -1, note = ''): void {
    const event: SimEvent = { seq: this.count, atMs, kind, from, to, channel, bytes, note };
    this.ring[this.count % this.capacity] = event;
    this.count++;
    this.hash = fnv1a(this.hash, formatSimEvent(event));
  }

  /** Events recorded over the whole run (the ring holds at most `capacity` of them). */
  get total(): number {
    return this.count;
  }

  /** A digest of every event recorded so far: equal digests mean (almost surely) equal runs. */
  digest(): string {
    return `${this.count}:${(this.hash >>> 0).toString(16).padStart(8, '0')}`;
  }

  /** The retained events, oldest first. */
  events(): SimEvent[] {
    const n = Math.min(this.count, this.capacity);
    const out: SimEvent[] = [];
    for (let i = this.count - n; i < this.count; i++) out.push(this.ring[i % this.capacity]!);
    return out;
  }

  /** The last `limit` retained events, one formatted line each, for printing a failing run. */
  lines(limit = this.capacity): string[] {
    const all = this.events();
    return all.slice(Math.max(0, all.length - limit)).map(formatSimEvent);
  }

  /** The last `limit` events as one printable string. */
  dump(limit = 200): string {
    const lines = this.lines(limit);
    const skipped = this.count - lines.length;
    return (skipped > 0 ? `... ${skipped} earlier events\n` : '') + lines.join('\n');
  }
}

/** One event as a line: `#12 t=1503 deliver n1->n2 ch=1 48B req=7`. */
export function formatSimEvent(e: SimEvent): string {
  let line = `#${e.seq} t=${e.atMs} ${e.kind}`;
  if (e.from !== '' || e.to !== '') line += ` ${e.from}->${e.to}`;
  if (e.channel >= 0) line += ` ch=${e.channel}`;
  if (e.bytes >= 0) line += ` ${e.bytes}B`;
  if (e.note !== '') line += ` ${e.note}`;
  return line;
}

function fnv1a(hash: number, text: string): number {
  let h = hash;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // Separator, so that event boundaries are part of the digest.
  h ^= 0x0a;
  return Math.imul(h, 0x01000193) >>> 0;
}
