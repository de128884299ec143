/**
 * The replica side of the cluster: answers the replica protocol's requests (protocol.ts)
 * from coordinators, against the local ReplicaStore. A write carrying `hintFor` is a
 * sloppy-quorum write for an unreachable owner: it is stored durably as a hint for that
 * owner, not applied here, and replayed when the owner is back (hints.ts).
 *
 * Clocks: a write whose versions are further ahead of this replica's clock than
 * `maxClockOffsetMs` is refused (CLOCK_SKEW), so a coordinator with a clock far ahead
 * cannot store versions that no later write could beat; versions accepted are observed by
 * this node's hybrid clock, so what it stamps next is newer.
 */
import type { Clock } from '../common/clock.js';
import { KvError } from '../common/errors.js';
import { type Limits, versionAheadMsMax } from '../common/limits.js';
import { Channel, type NodeId, type Transport } from '../cluster/transport.js';
import { searchLists } from '../compute/vector-search.js';
import type { VectorSearchRequest } from '../compute/vector-search.js';
import { type HybridClock, newestVersionMs } from '../storage/hlc.js';
import {
  type ProtocolLimits,
  type SearchReply,
  decodeRequest,
  encodeReadReply,
  encodeScanReply,
  encodeSearchReply,
  encodeWriteReply,
} from './protocol.js';
import type { ApplyItem, ReplicaStore } from './store.js';

export interface ReplicaServiceOptions {
  store: ReplicaStore;
  clock: Clock;
  transport: Transport;
  limits: ProtocolLimits & Pick<Limits, 'maxClockOffsetMs'>;
  /** This node's hybrid clock: observes every version applied here. */
  hlc?: HybridClock;
  /** Refuses every request while this returns an error (this member's clock is off). */
  guard?: () => KvError | null;
  /** Placement: refuses a request on an older epoch (STALE_EPOCH), learns a newer one. */
  epochCheck?: (from: NodeId, epoch: number, tag: number, read: boolean) => void;
  /** Refuses reads while this returns an error (a wiped member not yet restored). */
  readGuard?: () => KvError | null;
  /**
   * Whether this member holds the key's slot now (its table's write set): a write or read of a
   * slot it does not hold comes from a coordinator that is wrong about placement (a repair
   * aimed at a member that answered before the slot moved, say) and is refused, so records
   * never land where no cleanup will look.
   */
  holds?: (ns: string, key: Buffer) => boolean;
}

/** Runs a vector search over this replica's copies of the lists. */
export function localVectorSearch(store: ReplicaStore, ns: string, req: VectorSearchRequest, nowMs: number): Promise<SearchReply> {
  return searchLists(req.keys.map((k) => store.listSource(ns, k, nowMs)), req);
}

/**
 * Refuses deltas with a version further ahead of `referenceMs` (the replica's clock, or its
 * own newest stored version if later: HybridClock.referenceMs) than `maxOffsetMs`: LWW is
 * only as good as clocks, and a version from the future would beat every write for that long.
 */
export function checkNotAhead(items: readonly ApplyItem[], referenceMs: number, maxOffsetMs: number, from: string): void {
  for (const it of items) {
    const ms = newestVersionMs(it.delta);
    if (ms > referenceMs + maxOffsetMs) {
      throw new KvError(
        'CLOCK_SKEW',
        `${from} sent a version ${ms - referenceMs} ms ahead of this replica's clock, over ${maxOffsetMs} ms (twice 'maxClockOffsetMs'): its clock or this one is wrong`,
      );
    }
  }
}

/** Serves this node's replica channel. */
export class ReplicaService {
  private readonly store: ReplicaStore;
  private readonly clock: Clock;
  private readonly limits: ReplicaServiceOptions['limits'];
  private readonly hlc: HybridClock | undefined;
  private readonly guard: (() => KvError | null) | undefined;
  private readonly epochCheck: ReplicaServiceOptions['epochCheck'];
  private readonly readGuard: ReplicaServiceOptions['readGuard'];
  private readonly holds: ReplicaServiceOptions['holds'];
  private readonly self: NodeId;
  /** Writes refused because their versions were too far ahead. */
  refusedAhead = 0;

  constructor(options: ReplicaServiceOptions) {
    this.store = options.store;
    this.clock = options.clock;
    this.limits = options.limits;
    this.hlc = options.hlc;
    this.guard = options.guard;
    this.epochCheck = options.epochCheck;
    this.readGuard = options.readGuard;
    this.holds = options.holds;
    this.self = options.transport.self;
    options.transport.handle(Channel.replica, (from, payload) => this.handle(from, payload));
  }

  /** Handles one request; exported for tests. */
  handle(from: NodeId, payload: Buffer): Promise<Buffer> | Buffer {
    // A member whose clock is off is out of service: its copy would answer stale, and
    // coordinators go to the other replicas (and keep hints for it) instead.
    const refusal = this.guard?.();
    if (refusal) throw refusal;
    const req = decodeRequest(payload, this.limits);
    this.epochCheck?.(from, req.epoch, req.tag ?? 0, req.op !== 'write');
    if (req.op !== 'write') {
      const refused = this.readGuard?.();
      if (refused) throw refused;
    }
    if (this.holds && (req.op === 'read' || (req.op === 'write' && !req.hintFor))) {
      const keys = req.op === 'read' ? req.keys : req.items.map((it) => it.key);
      const ns = req.op === 'read' ? req.ns : '';
      for (let i = 0; i < keys.length; i++) {
        const itemNs = req.op === 'write' ? req.items[i]!.ns : ns;
        if (!this.holds(itemNs, keys[i]!)) {
          throw new KvError('STALE_EPOCH', `member '${this.self}' does not hold the slot of key '${keys[i]!.toString('utf8').slice(0, 64)}' at its placement epoch: refresh the table and retry`);
        }
      }
    }
    const nowMs = this.clock.nowMs();
    switch (req.op) {
      case 'write': {
        try {
          checkNotAhead(req.items, this.hlc ? this.hlc.referenceMs() : nowMs, versionAheadMsMax(this.limits), `member '${from}'`);
        } catch (err) {
          this.refusedAhead++;
          throw err;
        }
        if (this.hlc) for (const it of req.items) this.hlc.observeRecord(it.delta);
        if (req.hintFor === this.self) throw new KvError('PROTOCOL', `bad replica message: member '${from}' sent a hint for this member itself`);
        if (req.hintFor) return this.store.addHints(req.hintFor, req.items).then(() => encodeWriteReply(req.items.map(() => noResult)));
        return this.store.apply(req.items, nowMs).then(encodeWriteReply);
      }
      case 'read':
        return encodeReadReply(this.store.read(req.ns, req.keys));
      case 'scan':
        return encodeScanReply(this.store.scan(req.ns, req.start, req.end, req.limit, req.reverse, nowMs));
      case 'search':
        return localVectorSearch(this.store, req.ns, req.request, nowMs).then(encodeSearchReply);
    }
  }
}

/** The result a hint holder reports: the hint is not applied here. */
export const noResult = Object.freeze({ size: 0, wasLive: false, fieldsAdded: 0, fieldsRemoved: 0 });
