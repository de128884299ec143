/**
 * A simulated network of nodes in one process. Every message is copied on send and delivered
 * by a SimClock timer after a seeded random delay; loss, duplication, partitions and crashes
 * come from the same seed, so a seed replays a run exactly (see SimClock for why promise
 * continuations do not break this).
 *
 * Fault model, chosen to look like TCP between processes:
 * - A blocked link (partition, isolation, crashed or unknown peer) swallows messages. A request
 *   over it times out at its deadline, unless `failFastRate` (default 0) says the sender
 *   learns at once (UNREACHABLE, like a refused connection).
 * - A message in flight when its link becomes blocked, or when its destination crashes, is
 *   dropped at delivery time. A message sent to one incarnation of a node never reaches the
 *   next one (the connection broke).
 * - A crashed node's transport is dead: its pending requests reject with CLOSED, its sends are
 *   dropped, its handlers are gone. `restart(id)` gives it a fresh Transport.
 * - In the sim an address is whatever `transport(id, address)` registered (the node id by
 *   default); `requestAt` resolves it through that table.
 */
import assert from 'node:assert/strict';
import type { Random } from '../../src/common/random.js';
import { TransportError, decodeRemoteError, encodeRemoteError, type Handler, type NodeId, type Transport } from '../../src/cluster/transport.js';
import type { SimClock } from './clock.js';

/** Seeded fault rates and delays of a SimNetwork. */
export interface SimNetworkOptions {
  /** Smallest one-way delay, ms (integer). */
  delayMsMin: number;
  /** Largest one-way delay, ms (integer, inclusive). */
  delayMsMax: number;
  /** Probability that a message (request, reply or one-way) is lost. */
  lossRate: number;
  /** Probability that a message is delivered twice (each copy with its own delay). */
  duplicateRate: number;
  /** Probability that a request over a blocked link fails at once with UNREACHABLE instead of timing out (default 0). */
  failFastRate?: number;
}

/** Counters of a SimNetwork. */
export interface SimNetworkStats {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  /** Dropped because the link was blocked or the destination was down or gone. */
  blocked: number;
  /** Replies that arrived after their request had settled (timed out, duplicate). */
  lateReplies: number;
  timeouts: number;
}

type MessageKind = 'oneway' | 'request' | 'reply';

interface Message {
  readonly kind: MessageKind;
  readonly from: NodeId;
  readonly to: NodeId;
  /** The destination's incarnation when sent; a message never reaches a later one. */
  readonly toEpoch: number;
  readonly channel: number;
  readonly payload: Buffer;
  /** Request id (requests and replies), else 0. */
  readonly requestId: number;
  /** A reply carrying an error instead of a payload. */
  readonly error?: Buffer;
}

interface NodeState {
  readonly id: NodeId;
  address: string;
  /** Bumped by crash/close: messages addressed to an older epoch are dropped. */
  epoch: number;
  transport: SimTransport | null;
}

interface PendingRequest {
  readonly resolve: (reply: Buffer) => void;
  readonly reject: (error: TransportError) => void;
  readonly timer: { cancel(): void };
}

/** The in-memory network: owns every node's Transport and the faults between them. */
export class SimNetwork {
  readonly stats: SimNetworkStats = { sent: 0, delivered: 0, lost: 0, duplicated: 0, blocked: 0, lateReplies: 0, timeouts: 0 };
  private readonly options: Required<SimNetworkOptions>;
  private readonly nodes = new Map<NodeId, NodeState>();
  private readonly byAddress = new Map<string, NodeId>();
  /** Directed blocked links, `from\u0000to`. */
  private readonly blockedLinks = new Set<string>();
  private readonly isolated = new Set<NodeId>();
  private nextRequestId = 1;

  constructor(
    readonly clock: SimClock,
    private readonly random: Random,
    options: SimNetworkOptions,
  ) {
    const o = { failFastRate: 0, ...options };
    if (!Number.isSafeInteger(o.delayMsMin) || o.delayMsMin < 0) throw new RangeError(`'delayMsMin' must be a non-negative integer, got ${o.delayMsMin}`);
    if (!Number.isSafeInteger(o.delayMsMax) || o.delayMsMax < o.delayMsMin) throw new RangeError(`'delayMsMax' must be an integer >= 'delayMsMin', got ${o.delayMsMax}`);
    for (const name of ['lossRate', 'duplicateRate', 'failFastRate'] as const) {
      const v = o[name];
      if (!(v >= 0 && v <= 1)) throw new RangeError(`'${name}' must be in [0, 1], got ${v}`);
    }
    this.options = o;
  }

  /** Changes delay or fault rates mid-run (e.g. a lossy phase). */
  configure(options: Partial<SimNetworkOptions>): void {
    const next = { ...this.options, ...options };
    assert(next.delayMsMin >= 0 && next.delayMsMax >= next.delayMsMin, 'bad delay range');
    for (const v of [next.lossRate, next.duplicateRate, next.failFastRate]) assert(v >= 0 && v <= 1, 'rates must be in [0, 1]');
    Object.assign(this.options, next);
  }

  /**
   * The Transport of node `id` (registered on first use at `address`, default the id). A node
   * has one live transport at a time: after crash or close, use `restart`.
   */
  transport(id: NodeId, address: string = id): Transport {
    let node = this.nodes.get(id);
    if (node === undefined) {
      assert(!this.byAddress.has(address), `address ${address} is already taken by ${this.byAddress.get(address)}`);
      node = { id, address, epoch: 0, transport: null };
      this.nodes.set(id, node);
      this.byAddress.set(address, id);
    }
    assert(node.transport === null, `node ${id} already has a live transport (crash or close it first)`);
    node.transport = new SimTransport(this, id, node.epoch);
    return node.transport;
  }

  /** Stops node `id` at once: in-flight messages to it are lost, its pending requests reject, its handlers are gone. */
  crash(id: NodeId): void {
    const node = this.nodes.get(id);
    assert(node !== undefined, `unknown node ${id}`);
    this.clock.trace.record(this.clock.nowMs(), 'crash', id);
    this.detach(node, 'crashed');
  }

  /** Brings a crashed (or closed) node back with a fresh Transport: no handlers until it registers them. */
  restart(id: NodeId): Transport {
    const node = this.nodes.get(id);
    assert(node !== undefined, `unknown node ${id}`);
    if (node.transport !== null) this.detach(node, 'restarted');
    this.clock.trace.record(this.clock.nowMs(), 'restart', id);
    return this.transport(id, node.address);
  }

  /** True while node `id` has a live transport. */
  isUp(id: NodeId): boolean {
    return this.nodes.get(id)?.transport != null;
  }

  /** Blocks every link between group A and group B, both ways (adds to existing partitions). */
  partition(groupA: readonly NodeId[], groupB: readonly NodeId[]): void {
    this.clock.trace.record(this.clock.nowMs(), 'partition', groupA.join(','), groupB.join(','));
    for (const a of groupA) {
      for (const b of groupB) {
        if (a === b) continue;
        this.blockedLinks.add(linkKey(a, b));
        this.blockedLinks.add(linkKey(b, a));
      }
    }
  }

  /** Blocks messages from `from` to `to` only (an asymmetric fault). */
  blockOneWay(from: readonly NodeId[], to: readonly NodeId[]): void {
    this.clock.trace.record(this.clock.nowMs(), 'partition', from.join(','), to.join(','), -1, -1, 'one-way');
    for (const a of from) for (const b of to) if (a !== b) this.blockedLinks.add(linkKey(a, b));
  }

  /** Cuts node `id` off from every other node, present and future. */
  isolate(id: NodeId): void {
    this.clock.trace.record(this.clock.nowMs(), 'partition', id, '*');
    this.isolated.add(id);
  }

  /** Removes every partition and isolation. Crashed nodes stay crashed. */
  heal(): void {
    this.clock.trace.record(this.clock.nowMs(), 'heal');
    this.blockedLinks.clear();
    this.isolated.clear();
  }

  /** True when a message from `from` to `to` would be swallowed by a partition. */
  isBlocked(from: NodeId, to: NodeId): boolean {
    if (from === to) return false;
    return this.isolated.has(from) || this.isolated.has(to) || this.blockedLinks.has(linkKey(from, to));
  }

  // ----- used by SimTransport -----

  /** @internal */
  resolveAddress(address: string): NodeId | undefined {
    return this.byAddress.get(address);
  }

  /** @internal Allocates a request id. */
  allocateRequestId(): number {
    return this.nextRequestId++;
  }

  /** @internal True when a request from `from` to `to` cannot arrive (blocked link, down or unknown node). */
  unreachable(from: NodeId, to: NodeId): boolean {
    return this.isBlocked(from, to) || !this.isUp(to);
  }

  /** @internal Draws whether a request over an unreachable link fails at once. */
  drawFailFast(): boolean {
    return this.options.failFastRate > 0 && this.random.nextDouble() < this.options.failFastRate;
  }

  /** @internal Puts a message on the wire: loss, duplication and delay are drawn here. */
  post(kind: MessageKind, from: NodeId, to: NodeId, channel: number, payload: Buffer, requestId: number, error?: Message['error']): void {
    const dest = this.nodes.get(to);
    const message: Message = {
      kind,
      from,
      to,
      toEpoch: dest?.epoch ?? -1,
      channel,
      payload: Buffer.from(payload),
      requestId,
      ...(error !== undefined ? { error } : {}),
    };
    const now = this.clock.nowMs();
    const note = requestId > 0 ? `${kind} id=${requestId}` : kind;
    this.stats.sent++;
    this.clock.trace.record(now, 'send', from, to, channel, payload.length, note);
    if (this.unreachable(from, to)) {
      this.stats.blocked++;
      this.clock.trace.record(now, 'drop', from, to, channel, payload.length, `${note} blocked`);
      return;
    }
    if (this.options.lossRate > 0 && this.random.nextDouble() < this.options.lossRate) {
      this.stats.lost++;
      this.clock.trace.record(now, 'drop', from, to, channel, payload.length, `${note} lost`);
      return;
    }
    let copies = 1;
    if (this.options.duplicateRate > 0 && this.random.nextDouble() < this.options.duplicateRate) {
      this.stats.duplicated++;
      this.clock.trace.record(now, 'duplicate', from, to, channel, payload.length, note);
      copies = 2;
    }
    for (let i = 0; i < copies; i++) {
      const delayMs = this.random.intBetween(this.options.delayMsMin, this.options.delayMsMax);
      this.clock.setTimer(delayMs, () => this.deliver(message), null);
    }
  }

  /** @internal Records a transport-level event (timeout, unreachable, close). */
  note(kind: 'timeout' | 'unreachable' | 'close', from: NodeId, to: NodeId, channel: number, detail: string): void {
    if (kind === 'timeout') this.stats.timeouts++;
    this.clock.trace.record(this.clock.nowMs(), kind, from, to, channel, -1, detail);
  }

  /** @internal */
  countLateReply(): void {
    this.stats.lateReplies++;
  }

  private deliver(message: Message): void {
    const now = this.clock.nowMs();
    const note = message.requestId > 0 ? `${message.kind} id=${message.requestId}` : message.kind;
    const dest = this.nodes.get(message.to);
    if (dest === undefined || dest.transport === null || dest.epoch !== message.toEpoch || this.isBlocked(message.from, message.to)) {
      this.stats.blocked++;
      this.clock.trace.record(now, 'drop', message.from, message.to, message.channel, message.payload.length, `${note} blocked-at-delivery`);
      return;
    }
    this.stats.delivered++;
    this.clock.trace.record(now, 'deliver', message.from, message.to, message.channel, message.payload.length, note);
    // Each delivery gets its own copy: a duplicate must not see the first handler's mutations.
    const payload = Buffer.from(message.payload);
    if (message.kind === 'reply') dest.transport.receiveReply(message.requestId, payload, message.error);
    else dest.transport.receive(message.from, message.channel, payload, message.kind === 'request' ? message.requestId : 0);
  }

  private detach(node: NodeState, why: string): void {
    const transport = node.transport;
    node.epoch++;
    node.transport = null;
    if (transport !== null) transport.shutdown(why);
  }

  /** @internal Called by SimTransport.close(). */
  closeTransport(transport: SimTransport): void {
    const node = this.nodes.get(transport.self);
    if (node !== undefined && node.transport === transport) {
      this.clock.trace.record(this.clock.nowMs(), 'close', transport.self);
      this.detach(node, 'closed');
    }
  }
}

/** One simulated node's Transport. */
export class SimTransport implements Transport {
  private readonly handlers = new Map<number, Handler>();
  private readonly pending = new Map<number, PendingRequest>();
  private readonly addresses = new Map<NodeId, string>();
  private dead = false;

  /** @internal Made by SimNetwork. */
  constructor(
    private readonly network: SimNetwork,
    readonly self: NodeId,
    readonly epoch: number,
  ) {}

  request(to: NodeId, channel: number, payload: Buffer, timeoutMs: number): Promise<Buffer> {
    assert(Buffer.isBuffer(payload), 'payload must be a Buffer');
    assert(Number.isFinite(timeoutMs) && timeoutMs > 0, `timeoutMs must be positive, got ${timeoutMs}`);
    if (this.dead) return Promise.reject(new TransportError('CLOSED', `transport of ${this.self} is closed`));
    if (this.network.unreachable(this.self, to) && this.network.drawFailFast()) {
      this.network.note('unreachable', this.self, to, channel, 'fail-fast');
      return Promise.reject(new TransportError('UNREACHABLE', `${to} is unreachable from ${this.self}`));
    }
    const id = this.network.allocateRequestId();
    return new Promise<Buffer>((resolve, reject) => {
      const timer = this.network.clock.setTimer(
        timeoutMs,
        () => {
          if (!this.pending.delete(id)) return;
          this.network.note('timeout', this.self, to, channel, `id=${id}`);
          reject(new TransportError('TIMEOUT', `request ${id} from ${this.self} to ${to} got no reply in ${timeoutMs} ms`));
        },
        null,
      );
      this.pending.set(id, { resolve, reject, timer });
      this.network.post('request', this.self, to, channel, payload, id);
    });
  }

  async requestAt(address: string, channel: number, payload: Buffer, timeoutMs: number): Promise<{ from: NodeId; reply: Buffer }> {
    const to = this.network.resolveAddress(address);
    if (to === undefined) {
      // Nobody listens there: like a dead host, the attempt times out (or fails fast).
      if (this.dead) throw new TransportError('CLOSED', `transport of ${this.self} is closed`);
      if (this.network.drawFailFast()) throw new TransportError('UNREACHABLE', `nothing at ${address}`);
      await new Promise<void>((resolve) => this.network.clock.setTimer(timeoutMs, resolve, null));
      this.network.note('timeout', this.self, address, channel, 'no such address');
      throw new TransportError('TIMEOUT', `no reply from ${address} in ${timeoutMs} ms`);
    }
    const reply = await this.request(to, channel, payload, timeoutMs);
    return { from: to, reply };
  }

  send(to: NodeId, channel: number, payload: Buffer): void {
    assert(Buffer.isBuffer(payload), 'payload must be a Buffer');
    if (this.dead) return;
    this.network.post('oneway', this.self, to, channel, payload, 0);
  }

  handle(channel: number, handler: Handler): void {
    if (this.dead) return;
    assert(!this.handlers.has(channel), `channel ${channel} already has a handler on ${this.self}`);
    this.handlers.set(channel, handler);
  }

  setAddress(id: NodeId, address: string): void {
    this.addresses.set(id, address);
  }

  /** The address book as the owner set it (routing in the sim is by node id). */
  addressOf(id: NodeId): string | undefined {
    return this.addresses.get(id);
  }

  async close(): Promise<void> {
    this.network.closeTransport(this);
  }

  /** True once crashed or closed. */
  get closed(): boolean {
    return this.dead;
  }

  /** @internal A request or one-way message arrived. */
  receive(from: NodeId, channel: number, payload: Buffer, requestId: number): void {
    const handler = this.handlers.get(channel);
    if (requestId === 0) {
      if (handler !== undefined) handler(from, payload, false);
      return;
    }
    if (handler === undefined) {
      this.network.post('reply', this.self, from, channel, Buffer.alloc(0), requestId, encodeRemoteError(new Error(`no handler for channel ${channel} on ${this.self}`)));
      return;
    }
    let result: Buffer | Promise<Buffer> | void;
    try {
      result = handler(from, payload, true);
    } catch (err) {
      this.replyError(from, channel, requestId, err);
      return;
    }
    const epoch = this.epoch;
    Promise.resolve(result).then(
      (reply) => {
        // A handler that finishes after its node crashed replies nothing.
        if (this.dead || this.epoch !== epoch) return;
        if (!Buffer.isBuffer(reply)) {
          this.replyError(from, channel, requestId, new Error(`handler of channel ${channel} returned no reply`));
          return;
        }
        this.network.post('reply', this.self, from, channel, reply, requestId);
      },
      (err: unknown) => {
        if (!this.dead) this.replyError(from, channel, requestId, err);
      },
    );
  }

  /** @internal A reply arrived. */
  receiveReply(requestId: number, payload: Buffer, error: Buffer | undefined): void {
    const p = this.pending.get(requestId);
    if (p === undefined) {
      this.network.countLateReply();
      return;
    }
    this.pending.delete(requestId);
    p.timer.cancel();
    if (error !== undefined) p.reject(decodeRemoteError(error));
    else p.resolve(payload);
  }

  /** @internal Crash or close: reject what is pending, forget the handlers. */
  shutdown(why: string): void {
    if (this.dead) return;
    this.dead = true;
    this.handlers.clear();
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      p.timer.cancel();
      p.reject(new TransportError('CLOSED', `transport of ${this.self} ${why}`));
    }
  }

  private replyError(to: NodeId, channel: number, requestId: number, err: unknown): void {
    this.network.post('reply', this.self, to, channel, Buffer.alloc(0), requestId, encodeRemoteError(err));
  }
}

function linkKey(from: NodeId, to: NodeId): string {
  return `${from}\u0000${to}`;
}
