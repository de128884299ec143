/**
 * One read round, as a pure state machine: which replicas to ask for each key, when a key is
 * answered, and the merged record. The shell (engine.ts) sends what `next` returns, feeds
 * back `answer` / `fail`, and repeats until `done`. Transcripts: test/rounds.test.ts.
 *
 * - A key needs `required(level, N)` answers, from its replicas in the order given (this
 *   member first, then by load: see ReplicaTracker). A replica that fails is replaced by
 *   the next one.
 * - With a session floor, the merged answer must also cover it (see session.ts): while it
 *   does not, the next replica is asked too, and its answer merged in. So a read at ONE
 *   that reaches a replica which missed the session's write asks another, rather than
 *   answering stale.
 * - Answers are merged with the record CRDT's merge; replicas whose answer differs from the
 *   merged record are listed for read repair.
 */
import { KvError } from '../common/errors.js';
import type { NodeId } from '../cluster/transport.js';
import { type Record, merge } from '../storage/record.js';
import type { Level } from './api.js';
import { required } from './quorum.js';
import { type KeyFloor, covers } from './session.js';

/** What a round needs per key: live replicas in the order to ask them, N, and a session floor. */
export interface ReadKey {
  candidates: readonly NodeId[];
  /** Replicas of the key (N), reachable or not. */
  replicas: number;
  floor?: KeyFloor | undefined;
}

export interface ReadAnswer {
  node: NodeId;
  record: Record | null;
}

interface KeyState {
  next: number;
  inFlight: number;
  need: number;
  answers: ReadAnswer[];
  merged: Record | null;
  failures: string[];
  errors: unknown[];
  status: 'open' | 'met' | 'failed';
  error: KvError | null;
}

export class ReadRound {
  private readonly keys: KeyState[];

  constructor(
    private readonly specs: readonly ReadKey[],
    readonly level: Level,
    /** Names a key in errors. */
    private readonly describeKey: (k: number) => string,
  ) {
    this.keys = specs.map((s) => {
      const need = required(level, s.replicas);
      const k: KeyState = { next: 0, inFlight: 0, need, answers: [], merged: null, failures: [], errors: [], status: 'open', error: null };
      if (s.candidates.length < need) {
        k.status = 'failed';
        k.error = new KvError('QUORUM_NOT_MET', `read needs ${need} of ${s.replicas} replicas (${level}), ${s.candidates.length} reachable`);
      }
      return k;
    });
  }

  /** The asks to send now, grouped by member (key indexes); empty when nothing is left to ask. */
  next(): Map<NodeId, number[]> {
    const out = new Map<NodeId, number[]>();
    this.keys.forEach((k, i) => {
      if (k.status !== 'open' || k.inFlight > 0) return;
      const spec = this.specs[i]!;
      const uncovered = spec.floor !== undefined && k.answers.length > 0 && !covers(k.merged, spec.floor);
      const want = Math.max(k.need - k.answers.length, uncovered ? 1 : 0);
      if (want === 0) {
        k.status = 'met';
        return;
      }
      if (k.next + want > spec.candidates.length) {
        k.status = 'failed';
        k.error = this.failure(i, uncovered);
        return;
      }
      for (let j = 0; j < want; j++) {
        const node = spec.candidates[k.next++]!;
        let list = out.get(node);
        if (!list) out.set(node, (list = []));
        list.push(i);
        k.inFlight++;
      }
    });
    return out;
  }

  answer(node: NodeId, keys: readonly number[], records: readonly (Record | null)[]): void {
    keys.forEach((i, j) => {
      const k = this.keys[i]!;
      k.inFlight--;
      const record = records[j]!;
      k.answers.push({ node, record });
      if (record) k.merged = k.merged ? merge(k.merged, record) : record;
    });
  }

  fail(node: NodeId, keys: readonly number[], why: string, error: unknown): void {
    for (const i of keys) {
      const k = this.keys[i]!;
      k.inFlight--;
      k.failures.push(`${node}: ${why}`);
      k.errors.push(error);
    }
  }

  /** True when every key is answered or failed (call `next` to advance). */
  get done(): boolean {
    return this.keys.every((k) => k.status !== 'open');
  }

  /** The merged record of key `i` and every answer (for repair); throws the key's error. */
  result(i: number): { merged: Record | null; answers: readonly ReadAnswer[] } {
    const k = this.keys[i]!;
    if (k.status === 'failed') throw k.error!;
    return { merged: k.merged, answers: k.answers };
  }

  private failure(i: number, uncovered: boolean): KvError {
    const k = this.keys[i]!;
    const spec = this.specs[i]!;
    const details = k.failures.length ? `: ${k.failures.join(', ')}` : '';
    if (uncovered && k.answers.length >= k.need) {
      return new KvError(
        'UNAVAILABLE',
        `read of ${this.describeKey(i)} (${this.level}): no reachable replica has this session's latest writes or reads of it ` +
          `(asked ${k.answers.map((a) => a.node).join(', ')})${details}`,
      );
    }
    const codes = new Set(k.errors.map((e) => (e instanceof KvError ? e.code : '')));
    const message = `read needs ${k.need} of ${spec.replicas} replicas (${this.level}), ${k.answers.length} answered${details}`;
    if (codes.size === 1 && !codes.has('')) return new KvError((k.errors[0] as KvError).code, message);
    return new KvError('QUORUM_NOT_MET', message);
  }
}
