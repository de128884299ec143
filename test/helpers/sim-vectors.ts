/**
 * A small simulated cluster of cluster coordinators over memory replica stores, for vector
 * tests: every member coordinates and serves its replica channel; `run` drives simulated
 * time until a promise settles.
 */
import assert from 'node:assert/strict';
import { Random } from '../../src/common/random.js';
import { makeLimits } from '../../src/common/limits.js';
import { PlacementTable } from '../../src/cluster/placement/table.js';
import { SimClock, SimNetwork } from '../../testing/sim/index.js';
import { MemoryReplicaStore } from '../../src/replica/memory-store.js';
import { simView, startSimMember } from '../../testing/members.js';

/**
 * `liveView`: members see crashed members as down (so writes for them go to fallbacks);
 * otherwise every member looks alive and requests to a crashed one time out.
 */
export function simVectorCluster(options: { members: number; replicas: number; seed?: number; liveView?: boolean }) {
  const seed = options.seed ?? 3;
  const clock = new SimClock({ startMs: 1_700_000_000_000 });
  const net = new SimNetwork(clock, new Random(seed), { delayMsMin: 1, delayMsMax: 3, lossRate: 0, duplicateRate: 0 });
  const ids = Array.from({ length: options.members }, (_, i) => `n${i + 1}`);
  const ring = PlacementTable.initial(ids.map((id) => ({ id })), options.replicas, ids[0]!);
  const stores = new Map(ids.map((id) => [id, new MemoryReplicaStore()]));
  const coords = new Map(
    ids.map((id) => {
      const live = simView(ring, net, id);
      // A view that has not noticed anything yet: every member looks alive.
      const view = options.liveView ? live : { ...live, isAlive: () => true, aliveMembers: () => ids };
      const m = startSimMember({ id, ring, net, transport: net.transport(id), clock, store: stores.get(id)!, limits: makeLimits(), seed, requestTimeoutMs: 100, view });
      m.hints.stop();
      return [id, m.engine];
    }),
  );
  const run = async <T>(p: Promise<T> | T): Promise<T> => {
    let out: { v?: T; e?: unknown } | null = null;
    Promise.resolve(p).then((v) => (out = { v }), (e) => (out = { e }));
    await clock.runUntilTrue(() => out !== null, 10_000);
    assert.ok(out !== null, 'operation did not settle');
    const o = out as { v?: T; e?: unknown };
    if (o.e) throw o.e;
    return o.v as T;
  };
  /** The key's replicas, primary first. */
  const replicasOf = (key: Buffer) => ring.replicasFor('default', key);
  /** A member that holds no replica of `key` (its coordinator reads over the network). */
  const nonReplicaOf = (key: Buffer) => ids.find((id) => !replicasOf(key).includes(id));
  return { clock, net, ring, stores, coords, ids, run, replicasOf, nonReplicaOf };
}
