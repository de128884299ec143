/**
 * SWIM membership (Das et al. 2002, with memberlist's and Lifeguard's refinements):
 * - every probe interval, ping the next member of a shuffled round-robin list; if no ack comes
 *   within the probe timeout, ask `indirectProbes` others to ping it for us; if nobody got an
 *   ack by the end of the interval, suspect it;
 * - a suspect is declared dead when its suspicion timer (suspicion.ts) runs out, unless the
 *   member refutes first by raising its incarnation;
 * - news about members travels piggy-backed on pings and acks (broadcast-queue.ts), on a gossip
 *   tick to a few random members, and in periodic push-pull exchanges of the full state;
 * - joining is a push-pull with each seed address; leaving is a `left` broadcast.
 * Refinements against false deaths, each found by the simulator (seed sweeps under 10% loss
 * and brief partitions):
 * - a ping to a suspect carries the suspicion (Lifeguard's buddy system), and a member starts
 *   probing a new suspect at its next tick, so the suspect's refutation rides the ack back;
 * - an accused member answers the accuser directly, and re-announces itself when it hears a
 *   stale accusation (someone missed its refutation);
 * - a failed probe on which no helper answered at all (not even a nack) raises no suspicion:
 *   we are the one cut off; when we hear from others again we refute pre-emptively.
 * Everything runs on the injected Clock, Random and Transport, so the simulator replays it.
 */
import assert from 'node:assert/strict';
import type { Clock, Timer } from '../../common/clock.js';
import type { Random } from '../../common/random.js';
import { Channel, type NodeId, type Transport } from '../transport.js';
import { BroadcastQueue, retransmitLimit } from './broadcast-queue.js';
import { decodeMessage, encodeMessage, encodeUpdate, type AliveUpdate, type DeadUpdate, type GossipUpdate, type MembershipMessage, type SuspectUpdate } from './codec.js';
import { makeSwimConfig, membershipLimits, type SwimConfig } from './config.js';
import { aliveFactsDiffer, viewOf, type Member, type MemberIdentity, type MemberState, type MemberView } from './state.js';
import { Suspicion } from './suspicion.js';
import { ClockOffsets } from './clock-check.js';

/** What happened to a member. */
export type MembershipEventType = 'joined' | 'alive' | 'suspect' | 'dead' | 'left' | 'updated';

/** A change in this node's view of a member: `member` is the state after the change. */
export interface MembershipEvent {
  readonly type: MembershipEventType;
  readonly member: MemberView;
}

/** Construction parameters of Swim. */
export interface SwimOptions {
  self: MemberIdentity;
  transport: Transport;
  clock: Clock;
  random: Random;
  config?: Partial<SwimConfig>;
  /** Addresses to join through (a seed list, or a DNS lookup of a headless service). */
  seeds: () => Promise<string[]>;
}

/** Counters of one Swim instance. */
export interface SwimStats {
  probes: number;
  probesFailed: number;
  /** Failed probes that raised no suspicion because no helper answered either. */
  probesInconclusive: number;
  indirectProbes: number;
  suspicionsRaised: number;
  refutations: number;
  pushPulls: number;
  pushPullsFailed: number;
  /** Messages that failed to decode. */
  badMessages: number;
  /** Broadcasts dropped by a full queue. */
  broadcastsDropped: number;
  /** Members not added because membersMax was reached. */
  membersRefused: number;
}

type Listener = (event: MembershipEvent) => void;

/** Probes of one member running at once. */
const probesInFlightMax = 2;

/** One member's SWIM protocol instance. */
export class Swim {
  readonly config: SwimConfig;
  readonly stats: SwimStats = {
    probes: 0,
    probesFailed: 0,
    probesInconclusive: 0,
    indirectProbes: 0,
    suspicionsRaised: 0,
    refutations: 0,
    pushPulls: 0,
    pushPullsFailed: 0,
    badMessages: 0,
    broadcastsDropped: 0,
    membersRefused: 0,
  };
  private readonly transport: Transport;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly seeds: () => Promise<string[]>;
  private readonly self: Member;
  private readonly memberMap = new Map<NodeId, Member>();
  /** Clock offsets of peers, measured on direct acks and push-pulls (clock-check.ts). */
  readonly clocks = new ClockOffsets();
  private readonly suspicions = new Map<NodeId, Suspicion>();
  private readonly queue: BroadcastQueue;
  private readonly listeners: Listener[] = [];
  private readonly timers = new Set<Timer>();
  private probeList: NodeId[] = [];
  private probeIndex = 0;
  private probesInFlight = 0;
  /** Set when a probe found that nobody answers us at all; cleared by reconnected(). */
  private cutOff = false;
  private nextSeq = 1;
  private started = false;
  private stopped = false;
  private leaving = false;

  constructor(options: SwimOptions) {
    this.config = makeSwimConfig(options.config);
    const { id, address } = options.self;
    assert(id.length > 0 && Buffer.byteLength(id) <= membershipLimits.memberIdBytesMax, `member id must be 1..${membershipLimits.memberIdBytesMax} bytes`);
    assert(Buffer.byteLength(address) <= membershipLimits.addressBytesMax, `address over 'addressBytesMax'`);
    const zone = options.self.zone ?? '';
    const meta = Buffer.from(options.self.meta ?? Buffer.alloc(0));
    assert(Buffer.byteLength(zone) <= membershipLimits.zoneBytesMax, `zone over 'zoneBytesMax'`);
    assert(meta.length <= membershipLimits.metaBytesMax, `meta is ${meta.length} bytes, over 'metaBytesMax' (${membershipLimits.metaBytesMax})`);
    assert.equal(options.transport.self, id, 'the transport belongs to another node');
    this.transport = options.transport;
    this.clock = options.clock;
    this.random = options.random;
    this.seeds = options.seeds;
    this.queue = new BroadcastQueue(this.config.broadcastQueueMax);
    this.self = { id, address, incarnation: 0, status: 'alive', zone, meta, statusChangedAtMs: this.clock.nowMs() };
    this.memberMap.set(id, this.self);
  }

  /** This member's id. */
  get id(): NodeId {
    return this.self.id;
  }

  /** This member's current incarnation (raised to refute suspicion or publish new meta). */
  get incarnation(): number {
    return this.self.incarnation;
  }

  /** Registers the message handler and starts probing, gossip and push-pull. */
  start(): void {
    assert(!this.started, 'Swim already started');
    this.started = true;
    this.transport.handle(Channel.membership, (from, payload, isRequest) => this.onMessage(from, payload, isRequest));
    // Random first delays keep members from probing in lockstep.
    this.every(this.config.probeIntervalMs, this.random.nextInt(this.config.probeIntervalMs) + 1, () => this.probeTick());
    this.every(this.config.gossipIntervalMs, this.random.nextInt(this.config.gossipIntervalMs) + 1, () => this.gossipTick());
    this.every(this.config.pushPullIntervalMs, this.random.nextInt(this.config.pushPullIntervalMs) + 1, () => this.pushPullTick());
    this.every(this.config.deadReclaimMs, this.config.deadReclaimMs, () => this.reclaimTick());
  }

  /** Exchanges full state with every seed address (own address skipped); resolves how many answered. */
  async join(): Promise<number> {
    assert(this.started && !this.stopped, 'join() needs a started Swim');
    const addresses = [...new Set(await this.seeds())].filter((a) => a !== this.self.address);
    const results = await Promise.all(addresses.map((address) => this.pushPullWith(address, true)));
    return results.filter(Boolean).length;
  }

  /**
   * Announces that this member leaves: a `left` broadcast is gossiped, and this resolves once it
   * went out enough times or after leaveTimeoutMs. Probing stops; call stop() afterwards.
   */
  async leave(): Promise<void> {
    assert(this.started && !this.stopped, 'leave() needs a started Swim');
    if (this.leaving) return;
    this.leaving = true;
    this.self.incarnation++;
    this.setStatus(this.self, 'left');
    const seq = this.broadcast({ kind: 'left', id: this.self.id, incarnation: this.self.incarnation, from: this.self.id });
    this.gossipTick();
    let timer: Timer | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = this.clock.setTimer(this.config.leaveTimeoutMs, resolve);
    });
    await Promise.race([this.queue.finished(this.self.id, seq), timeout]);
    timer?.cancel();
  }

  /** Stops every timer and answers no more messages. */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers) t.cancel();
    this.timers.clear();
    for (const s of this.suspicions.values()) s.cancel();
    this.suspicions.clear();
    this.queue.clear();
  }

  /** Publishes new metadata (the ring's tokens): raises the incarnation and gossips it. */
  updateMeta(meta: Buffer): void {
    assert(meta.length <= membershipLimits.metaBytesMax, `meta is ${meta.length} bytes, over 'metaBytesMax' (${membershipLimits.metaBytesMax})`);
    this.self.meta = Buffer.from(meta);
    this.self.incarnation++;
    this.broadcastSelfAlive();
  }

  /** Every known member, this one included, sorted by id. */
  members(): MemberView[] {
    return [...this.memberMap.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map(viewOf);
  }

  /** One member, or undefined. */
  member(id: NodeId): MemberView | undefined {
    const m = this.memberMap.get(id);
    return m === undefined ? undefined : viewOf(m);
  }

  /** Subscribes to membership changes; returns the unsubscribe function. Listeners must not throw. */
  on(event: 'change', listener: Listener): () => void {
    assert.equal(event, 'change');
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  // ----- timers -----

  private every(intervalMs: number, firstDelayMs: number, fn: () => void): void {
    const arm = (delayMs: number): void => {
      const timer = this.clock.setTimer(delayMs, () => {
        this.timers.delete(timer);
        if (this.stopped) return;
        arm(intervalMs);
        fn();
      });
      this.timers.add(timer);
    };
    arm(firstDelayMs);
  }

  private probeTick(): void {
    // A failed probe lasts a whole interval and ends at the next tick: allow one overlap so
    // that the tick is not skipped, but no more.
    if (this.leaving || this.probesInFlight >= probesInFlightMax) return;
    const target = this.nextProbeTarget();
    if (target === undefined) return;
    this.probesInFlight++;
    void this.probe(target).finally(() => {
      this.probesInFlight--;
    });
  }

  private nextProbeTarget(): Member | undefined {
    // Bounded: at most one reshuffle and one pass over the list.
    for (let attempts = 0; attempts <= this.memberMap.size + 1; attempts++) {
      if (this.probeIndex >= this.probeList.length) {
        this.probeList = this.shuffled([...this.memberMap.keys()].filter((id) => id !== this.self.id));
        this.probeIndex = 0;
        if (this.probeList.length === 0) return undefined;
      }
      const m = this.memberMap.get(this.probeList[this.probeIndex++]!);
      if (m !== undefined && (m.status === 'alive' || m.status === 'suspect')) return m;
    }
    return undefined;
  }

  private async probe(target: Member): Promise<void> {
    this.stats.probes++;
    const seq = this.nextSeq++;
    const incarnation = target.incarnation;
    const gossip = this.takeGossip();
    // Buddy system (Lifeguard): a suspect learns of the suspicion from its prober directly,
    // so that it can refute even when the broadcast went elsewhere or was lost.
    if (target.status === 'suspect') gossip.unshift(encodeUpdate({ kind: 'suspect', id: target.id, incarnation: target.incarnation, from: this.self.id }));
    const ping = encodeMessage({ type: 'ping', seq, target: target.id, gossip: [] }, gossip);
    try {
      const sentAtMs = this.clock.nowMs();
      const reply = this.receiveReply(await this.transport.request(target.id, Channel.membership, ping, this.config.probeTimeoutMs));
      if (reply?.type === 'ack' && reply.seq === seq) {
        // A direct ack measures the target's clock (relayed ones would add the helper's hop).
        this.clocks.record(target.id, sentAtMs, this.clock.nowMs(), reply.wallMs);
        this.reconnected();
        return;
      }
    } catch {
      // No ack in time: fall through to indirect probes.
    }
    if (this.stopped || this.leaving) return;
    const helpers = this.randomMembers(this.config.indirectProbes, (m) => m.status === 'alive' && m.id !== target.id);
    const remainingMs = this.config.probeIntervalMs - this.config.probeTimeoutMs;
    const answers = await Promise.all(
      helpers.map(async (helper): Promise<'ack' | 'nack' | 'none'> => {
        this.stats.indirectProbes++;
        const pingReq = this.encodeWithGossip({ type: 'ping-req', seq, target: target.id, gossip: [] });
        try {
          const reply = this.receiveReply(await this.transport.request(helper.id, Channel.membership, pingReq, remainingMs));
          if (reply?.type === 'ack' && reply.seq === seq) return 'ack';
          return reply?.type === 'nack' ? 'nack' : 'none';
        } catch {
          return 'none';
        }
      }),
    );
    if (this.stopped || this.leaving) return;
    if (answers.includes('ack') || answers.includes('nack')) this.reconnected();
    if (answers.includes('ack')) return;
    if (helpers.length > 0 && !answers.includes('nack')) {
      // Not one helper answered at all: we are most likely the one cut off (Lifeguard's
      // missing-nack signal), so suspecting the target would only spread our own failure.
      this.stats.probesInconclusive++;
      this.cutOff = true;
      return;
    }
    if (helpers.length === 0) {
      // Nobody to ask: wait out the interval like an indirect probe would, so that a lone
      // prober does not suspect faster than a crowd.
      await new Promise<void>((resolve) => {
        const t = this.clock.setTimer(remainingMs, () => {
          this.timers.delete(t);
          resolve();
        });
        this.timers.add(t);
      });
      if (this.stopped || this.leaving) return;
    }
    this.stats.probesFailed++;
    const current = this.memberMap.get(target.id);
    if (current === undefined || current.status !== 'alive' && current.status !== 'suspect') return;
    this.applySuspect({ kind: 'suspect', id: target.id, incarnation: Math.max(incarnation, current.incarnation), from: this.self.id });
  }

  /**
   * Measures a member's clock now with a direct ping (its ack carries its wall time), rather
   * than at its next probe: a member that just learned of a peer knows at once whether its
   * clock agrees (clock-check.ts). A lost ping is no failure; probes measure again.
   */
  private async measureClock(id: NodeId): Promise<void> {
    if (this.stopped || this.leaving) return;
    const seq = this.nextSeq++;
    const sentAtMs = this.clock.nowMs();
    try {
      const reply = this.receiveReply(await this.transport.request(id, Channel.membership, this.encodeWithGossip({ type: 'ping', seq, target: id, gossip: [] }), this.config.probeTimeoutMs));
      if (reply?.type === 'ack' && reply.seq === seq) this.clocks.record(id, sentAtMs, this.clock.nowMs(), reply.wallMs);
    } catch {
      // Measured at its next probe instead.
    }
  }

  private gossipTick(): void {
    if (this.queue.size === 0) return;
    const now = this.clock.nowMs();
    const targets = this.randomMembers(
      this.config.gossipNodes,
      (m) => m.status === 'alive' || m.status === 'suspect' || (m.status === 'dead' && now - m.statusChangedAtMs < this.config.gossipToTheDeadMs),
    );
    for (const t of targets) {
      const gossip = this.takeGossip();
      if (gossip.length === 0) return;
      this.transport.send(t.id, Channel.membership, encodeMessage({ type: 'gossip', gossip: [] }, gossip));
    }
  }

  private pushPullTick(): void {
    if (this.leaving) return;
    const now = this.clock.nowMs();
    const [peer] = this.randomMembers(
      1,
      (m) => m.status === 'alive' || m.status === 'suspect' || (m.status === 'dead' && now - m.statusChangedAtMs < this.config.gossipToTheDeadMs),
    );
    if (peer !== undefined) {
      void this.pushPullWith(peer.address, false);
      return;
    }
    // Nobody left to talk to (e.g. back from a long partition): rejoin through the seeds.
    void this.seeds().then(
      (addresses) => {
        for (const a of new Set(addresses)) if (a !== this.self.address && !this.stopped) void this.pushPullWith(a, true);
      },
      () => {
        this.stats.pushPullsFailed++;
      },
    );
  }

  private reclaimTick(): void {
    const now = this.clock.nowMs();
    for (const m of [...this.memberMap.values()]) {
      if ((m.status === 'dead' || m.status === 'left') && now - m.statusChangedAtMs >= this.config.deadReclaimMs) this.memberMap.delete(m.id);
    }
  }

  // ----- messages -----

  private async pushPullWith(address: string, join: boolean): Promise<boolean> {
    this.stats.pushPulls++;
    const sentAtMs = this.clock.nowMs();
    const request = encodeMessage({ type: 'push-pull', join, wallMs: sentAtMs, states: this.localStates() });
    try {
      const { from, reply } = await this.transport.requestAt(address, Channel.membership, request, this.config.pushPullTimeoutMs);
      if (this.stopped) return false;
      const message = decodeMessage(reply);
      if (message.type !== 'push-pull') throw new Error(`push-pull answered with ${message.type}`);
      this.clocks.record(from, sentAtMs, this.clock.nowMs(), message.wallMs);
      this.mergeStates(message.states, from);
      return true;
    } catch {
      this.stats.pushPullsFailed++;
      return false;
    }
  }

  private onMessage(from: NodeId, payload: Buffer, isRequest: boolean): Buffer | Promise<Buffer> | void {
    if (this.stopped) throw new Error(`member ${this.self.id} is stopped`);
    let message: MembershipMessage;
    try {
      message = decodeMessage(payload);
    } catch (err) {
      this.stats.badMessages++;
      throw err;
    }
    if (message.type === 'push-pull') {
      // Reply with the state before merging: the requester learns what we knew.
      const reply = isRequest ? encodeMessage({ type: 'push-pull', join: false, wallMs: this.clock.nowMs(), states: this.localStates() }) : undefined;
      this.mergeStates(message.states, from);
      return reply;
    }
    this.applyGossip(message.gossip);
    switch (message.type) {
      case 'ping':
        if (!isRequest) return;
        if (message.target !== this.self.id) return this.encodeWithGossip({ type: 'nack', seq: message.seq, gossip: [] });
        return this.encodeWithGossip({ type: 'ack', seq: message.seq, wallMs: this.clock.nowMs(), gossip: [] });
      case 'ping-req':
        if (!isRequest) return;
        return this.pingOnBehalf(message.seq, message.target);
      case 'gossip':
        return isRequest ? this.encodeWithGossip({ type: 'ack', seq: 0, wallMs: this.clock.nowMs(), gossip: [] }) : undefined;
      case 'ack':
      case 'nack':
        this.stats.badMessages++;
        throw new Error(`unexpected ${message.type} as a request`);
    }
  }

  private async pingOnBehalf(seq: number, target: NodeId): Promise<Buffer> {
    const ping = this.encodeWithGossip({ type: 'ping', seq, target, gossip: [] });
    let acked = false;
    try {
      const reply = this.receiveReply(await this.transport.request(target, Channel.membership, ping, this.config.probeTimeoutMs));
      acked = reply?.type === 'ack';
    } catch {
      acked = false;
    }
    return this.encodeWithGossip(acked ? { type: 'ack', seq, wallMs: this.clock.nowMs(), gossip: [] } : { type: 'nack', seq, gossip: [] });
  }

  /** Decodes a reply and applies its gossip; undefined when it is malformed. */
  private receiveReply(reply: Buffer): MembershipMessage | undefined {
    if (this.stopped) return undefined;
    let message: MembershipMessage;
    try {
      message = decodeMessage(reply);
    } catch {
      this.stats.badMessages++;
      return undefined;
    }
    if (message.type !== 'push-pull') this.applyGossip(message.gossip);
    return message;
  }

  private encodeWithGossip(message: MembershipMessage): Buffer {
    return encodeMessage(message, this.takeGossip());
  }

  private takeGossip(): Buffer[] {
    return this.queue.take(this.config.gossipMax, this.config.gossipBytesMax, retransmitLimit(this.config.retransmitMult, this.liveCount()));
  }

  private localStates(): MemberState[] {
    return [...this.memberMap.values()].map((m) => ({ id: m.id, address: m.address, incarnation: m.incarnation, status: m.status, zone: m.zone, meta: m.meta }));
  }

  private mergeStates(states: readonly MemberState[], from: NodeId): void {
    for (const s of states) {
      switch (s.status) {
        case 'alive':
          this.applyAlive({ kind: 'alive', id: s.id, incarnation: s.incarnation, address: s.address, zone: s.zone, meta: s.meta });
          break;
        case 'left':
          this.applyDead({ kind: 'left', id: s.id, incarnation: s.incarnation, from: s.id });
          break;
        case 'suspect':
        case 'dead':
          // A remote "dead" is only a suspicion here (as in memberlist): we let our own
          // timer decide, so one node's mistake does not spread as a verdict.
          this.applySuspect({ kind: 'suspect', id: s.id, incarnation: s.incarnation, from });
          break;
      }
    }
  }

  private applyGossip(updates: readonly GossipUpdate[]): void {
    for (const u of updates) {
      switch (u.kind) {
        case 'alive':
          this.applyAlive(u);
          break;
        case 'suspect':
          this.applySuspect(u);
          break;
        case 'dead':
        case 'left':
          this.applyDead(u);
          break;
      }
    }
  }

  // ----- state transitions -----

  private applyAlive(u: AliveUpdate): void {
    if (this.stopped) return;
    if (u.id === this.self.id) {
      // Someone believes an alive of ours that we never said (an older process with our id):
      // overrule it.
      if (!this.leaving && (u.incarnation > this.self.incarnation || (u.incarnation === this.self.incarnation && aliveFactsDiffer(u, this.self)))) {
        this.refute(u.incarnation);
      }
      return;
    }
    const m = this.memberMap.get(u.id);
    if (m === undefined) {
      if (this.memberMap.size >= membershipLimits.membersMax) {
        this.stats.membersRefused++;
        return;
      }
      const member: Member = { id: u.id, address: u.address, incarnation: u.incarnation, status: 'alive', zone: u.zone, meta: u.meta, statusChangedAtMs: this.clock.nowMs() };
      this.memberMap.set(u.id, member);
      this.transport.setAddress(u.id, u.address);
      // A new member goes to a random place in the probe list, so that it is probed this round.
      this.probeList.splice(this.probeIndex + this.random.nextInt(this.probeList.length - this.probeIndex + 1), 0, u.id);
      this.broadcast(u);
      this.emit('joined', member);
      void this.measureClock(u.id);
      return;
    }
    if (u.incarnation <= m.incarnation) return;
    const wasStatus = m.status;
    const factsChanged = aliveFactsDiffer(u, m);
    m.incarnation = u.incarnation;
    if (m.address !== u.address) this.transport.setAddress(u.id, u.address);
    m.address = u.address;
    m.zone = u.zone;
    m.meta = u.meta;
    this.suspicions.get(u.id)?.cancel();
    this.suspicions.delete(u.id);
    this.broadcast(u);
    if (wasStatus !== 'alive') {
      this.setStatus(m, 'alive');
      this.emit('alive', m);
      void this.measureClock(u.id);
    } else if (factsChanged) {
      this.emit('updated', m);
    }
  }

  private applySuspect(u: SuspectUpdate): void {
    if (this.stopped) return;
    if (u.id === this.self.id) {
      this.answerAccusation(u.incarnation, u.from);
      return;
    }
    const m = this.memberMap.get(u.id);
    if (m === undefined || u.incarnation < m.incarnation) return;
    if (m.status === 'suspect') {
      m.incarnation = u.incarnation;
      if (this.suspicions.get(u.id)?.confirm(u.from) === true) this.broadcast(u);
      return;
    }
    if (m.status !== 'alive') return;
    m.incarnation = u.incarnation;
    this.setStatus(m, 'suspect');
    if (u.from === this.self.id) this.stats.suspicionsRaised++;
    // Confirmations that would shorten the timer to its minimum: the others who may probe it.
    const expected = Math.max(0, Math.min(this.config.indirectProbes, this.liveCount() - 2));
    const incarnation = u.incarnation;
    const suspicion = new Suspicion(this.clock, u.from, expected, this.config.suspicionTimeoutMs, this.config.suspicionMaxTimeoutMs, () => {
      this.suspicions.delete(u.id);
      const now = this.memberMap.get(u.id);
      if (now !== undefined && now.status === 'suspect' && now.incarnation === incarnation) {
        this.applyDead({ kind: 'dead', id: u.id, incarnation, from: this.self.id });
      }
    });
    this.suspicions.set(u.id, suspicion);
    // Probe the suspect next: our buddy ping tells it of the suspicion and its ack carries the
    // refutation straight back, instead of waiting for gossip to find us.
    this.probeList.splice(this.probeIndex, 0, u.id);
    this.broadcast(u);
    this.emit('suspect', m);
  }

  private applyDead(u: DeadUpdate): void {
    if (this.stopped) return;
    const left = u.kind === 'left' && u.from === u.id;
    if (u.id === this.self.id) {
      this.answerAccusation(u.incarnation, u.from);
      return;
    }
    const m = this.memberMap.get(u.id);
    if (m === undefined || u.incarnation < m.incarnation) return;
    if (m.status === 'left' || (m.status === 'dead' && !left)) return;
    m.incarnation = u.incarnation;
    this.suspicions.get(u.id)?.cancel();
    this.suspicions.delete(u.id);
    this.setStatus(m, left ? 'left' : 'dead');
    this.broadcast(u);
    this.emit(left ? 'left' : 'dead', m);
  }

  /**
   * Someone suspects us or declared us dead. At our incarnation or above: refute. Below it,
   * the sender missed our refutation: queue our alive again, fewest-sent-first puts it on
   * the reply we are about to send to that very sender.
   */
  private answerAccusation(incarnation: number, accuser: NodeId): void {
    if (this.leaving) return;
    if (incarnation >= this.self.incarnation) this.refute(incarnation);
    else this.broadcastSelfAlive();
    // The accuser's own timer is what would declare us dead: tell it directly too, rather
    // than hope that one of the random gossip targets is the accuser.
    const s = this.self;
    if (accuser !== s.id && this.memberMap.has(accuser)) {
      const alive = encodeUpdate({ kind: 'alive', id: s.id, incarnation: s.incarnation, address: s.address, zone: s.zone, meta: s.meta });
      this.transport.send(accuser, Channel.membership, encodeMessage({ type: 'gossip', gossip: [] }, [alive]));
    }
  }

  /**
   * We reach others again after a spell in which nobody answered us. They have probably been
   * suspecting us meanwhile, and the suspicion broadcasts were spent while we could hear
   * none: refute before being told, rather than race their suspicion timers.
   */
  private reconnected(): void {
    if (!this.cutOff) return;
    this.cutOff = false;
    if (!this.leaving) this.refute(this.self.incarnation);
  }

  /** Overrules a suspicion, death or stale alive about us by outbidding its incarnation. */
  private refute(incarnation: number): void {
    this.stats.refutations++;
    this.self.incarnation = Math.max(this.self.incarnation, incarnation) + 1;
    this.broadcastSelfAlive();
  }

  private broadcastSelfAlive(): void {
    const s = this.self;
    this.broadcast({ kind: 'alive', id: s.id, incarnation: s.incarnation, address: s.address, zone: s.zone, meta: s.meta });
  }

  private broadcast(u: GossipUpdate): number {
    const before = this.queue.dropped;
    const seq = this.queue.enqueue(u.id, encodeUpdate(u));
    this.stats.broadcastsDropped += this.queue.dropped - before;
    return seq;
  }

  private setStatus(m: Member, status: Member['status']): void {
    m.status = status;
    m.statusChangedAtMs = this.clock.nowMs();
  }

  private emit(type: MembershipEvent['type'], m: Member): void {
    if (this.listeners.length === 0) return;
    const event: MembershipEvent = { type, member: viewOf(m) };
    for (const l of [...this.listeners]) l(event);
  }

  // ----- helpers -----

  /** Members other than us that are alive or suspect, plus us. */
  private liveCount(): number {
    let n = 0;
    for (const m of this.memberMap.values()) if (m.status === 'alive' || m.status === 'suspect') n++;
    return n;
  }

  /** Up to `k` distinct random members (never us) that pass `accept`. */
  private randomMembers(k: number, accept: (m: Member) => boolean): Member[] {
    const pool = [...this.memberMap.values()].filter((m) => m.id !== this.self.id && accept(m));
    const out: Member[] = [];
    while (out.length < k && pool.length > 0) {
      const i = this.random.nextInt(pool.length);
      out.push(pool[i]!);
      pool[i] = pool[pool.length - 1]!;
      pool.pop();
    }
    return out;
  }

  private shuffled<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.random.nextInt(i + 1);
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }
}
