/**
 * Hinted handoff, the replay side: hints held here for other nodes are sent to them once
 * they are alive again, oldest first, one batch per target at a time, and removed only
 * after the target acknowledged them durably. Driven by the injected clock.
 */
import type { Clock, Timer } from '../common/clock.js';
import { Channel, type NodeId, type Transport } from '../cluster/transport.js';
import type { ReplicaStore } from './store.js';
import { decodeWriteReply, encodeRequest } from './protocol.js';

export interface HintReplayOptions {
  intervalMs: number;
  batchMax: number;
  timeoutMs: number;
  isAlive: (id: NodeId) => boolean;
  /** Placement epoch the replays carry. */
  epoch?: () => number;
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
      if (this.busy.has(target) || target === this.transport.self || !this.options.isAlive(target)) continue;
      this.busy.add(target);
      void this.replay(target).finally(() => this.busy.delete(target));
    }
  }

  private async replay(target: NodeId): Promise<void> {
    for (;;) {
      const batch = this.store.peekHints(target, this.options.batchMax);
      if (batch.items.length === 0 || this.stopped) return;
      try {
        const request = encodeRequest({ op: 'write', epoch: this.options.epoch?.() ?? 0, hintFor: null, items: batch.items });
        const reply = await this.transport.request(target, Channel.replica, request, this.options.timeoutMs);
        decodeWriteReply(reply, batch.items.length);
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
}
