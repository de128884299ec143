/**
 * Hinted handoff, the replay side: hints held here for other nodes are sent to them once
 * they are alive again, oldest first, one batch per target at a time, and removed only
 * after the target acknowledged them durably. Driven by the injected clock.
 */
import type { Clock, Timer } from '../common/clock.js';
import { Channel, type NodeId, type Transport } from '../cluster/transport.js';
import type { ApplyItem, ReplicaStore } from './store.js';
import { decodeWriteReply, encodeRequest } from './protocol.js';

export interface HintReplayOptions {
  intervalMs: number;
  batchMax: number;
  timeoutMs: number;
  isAlive: (id: NodeId) => boolean;
  /** Placement epoch and tag the replays carry. */
  epoch?: () => number;
  tag?: () => number;
  /**
   * Where a key's writes go now (its slot's write set), or null when placement is not known:
   * a hint whose target no longer holds the key's slot (it was removed, or the slot moved)
   * goes to the slot's current owners instead of waiting for the target.
   */
  ownersOf?: (ns: string, key: Buffer) => readonly NodeId[] | null;
  /** Is `id` still in the placement table? Hints for a member that is not go to the owners at once. */
  isMember?: (id: NodeId) => boolean;
}

export class HintReplayer {
  private timer: Timer | null = null;
  private readonly busy = new Set<NodeId>();
  private stopped = false;
  /** Hints delivered since start (for metrics and tests). */
  delivered = 0;

  constructor(
    private readonly store: ReplicaStore,
    private readonly transport: Transport,
    private readonly clock: Clock,
    private readonly options: HintReplayOptions,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = null;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimer(this.options.intervalMs, () => {
      this.tick();
      this.schedule();
    });
  }

  /** One replay round: a batch to every alive target not already being replayed to. */
  tick(): void {
    for (const target of this.store.hintTargets()) {
      const gone = this.options.isMember ? !this.options.isMember(target) : false;
      if (this.busy.has(target) || target === this.transport.self || (!gone && !this.options.isAlive(target))) continue;
      this.busy.add(target);
      void this.replay(target).finally(() => this.busy.delete(target));
    }
  }

  private async replay(target: NodeId): Promise<void> {
    for (;;) {
      const batch = this.store.peekHints(target, this.options.batchMax);
      if (batch.items.length === 0 || this.stopped) return;
      // Split: what the target still holds goes to it; the rest to the key's current owners.
      const ownersOf = this.options.ownersOf;
      const keep: ApplyItem[] = [];
      const moved = new Map<NodeId, ApplyItem[]>();
      for (const it of batch.items) {
        const owners = ownersOf?.(it.ns, it.key) ?? null;
        if (owners === null || owners.includes(target)) keep.push(it);
        else {
          // Owners that are down now are skipped (their own hints and repair cover them); with
          // none up, the batch waits.
          const up = owners.filter((o) => o === this.transport.self || this.options.isAlive(o));
          if (up.length === 0) return;
          for (const o of up) (moved.get(o) ?? moved.set(o, []).get(o)!).push(it);
        }
      }
      try {
        if (keep.length > 0) await this.send(target, keep);
        for (const [owner, items] of moved) {
          if (owner === this.transport.self) await this.store.apply(items, this.clock.nowMs());
          else await this.send(owner, items);
        }
      } catch {
        return; // still unreachable: the next round tries again
      }
      try {
        await this.store.removeHints(target, batch.ids);
      } catch {
        return; // not removed (a full disk): delivered again next round, and merge is idempotent
      }
      this.delivered += batch.items.length;
    }
  }

  private async send(node: NodeId, items: ApplyItem[]): Promise<void> {
    const request = encodeRequest({ op: 'write', epoch: this.options.epoch?.() ?? 0, tag: this.options.tag?.() ?? 0, hintFor: null, items });
    decodeWriteReply(await this.transport.request(node, Channel.replica, request, this.options.timeoutMs), items.length);
  }
}
