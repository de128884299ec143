/**
 * Deleted vector items are removed from disk on every replica of a real 3-member cluster,
 * also on a member that was killed (kill -9) while the deletes were written and got them
 * from hints: afterwards every member holds the same, smaller list, answers searches as
 * before, and no acknowledged item that was not deleted is missing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { get } from 'node:http';
import { Redis } from 'ioredis';
import { Random } from '../src/common/random.js';
import { ProcessCluster, waitFor } from './helpers/cluster.js';
import { encodeDeleteBatch, encodeItemBatch, pruneDeletedItems } from '../src/compute/vector-items.js';

const dim = 16;
const lists = 6;
const perList = 60;

function metricsText(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ host, port, path: '/metrics', timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

const metric = (text: string, name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);

test('cluster: compaction removes deleted items on every replica, including one that was down during the deletes', { timeout: 120_000 }, async () => {
  const cluster = await ProcessCluster.start({ hosts: ['127.0.0.61', '127.0.0.62', '127.0.0.63'] });
  const clients: Redis[] = [];
  const connect = async (i: number) => {
    const r = new Redis({ host: cluster.host(i), port: cluster.member(i).ports.resp, maxRetriesPerRequest: 0 });
    clients.push(r);
    // Reads of this connection come from the member's own copy (every member holds every key).
    await r.call('RAGKV.CONSISTENCY', 'READ', 'ONE', 'WRITE', 'QUORUM');
    return r;
  };
  try {
    const rnd = new Random(11);
    const a = await connect(0);
    const keys = Array.from({ length: lists }, (_, l) => `plist:${l}`);
    const live = new Map<string, Map<string, Buffer>>();
    const readded: string[] = [];
    // The segments each list is made of, encoded here as the server does, to know the exact
    // size of a fully compacted list.
    const segments = new Map<string, Buffer[]>();
    const itemBatch = (items: [string, Buffer][]) => encodeItemBatch({ type: 'uint8', dim, items: items.map(([id, v]) => ({ id: Buffer.from(id), vector: [...v] })) });
    for (const key of keys) {
      const items = new Map<string, Buffer>();
      for (let i = 0; i < perList; i++) items.set(`${key}/i${i}`, Buffer.from(Array.from({ length: dim }, () => rnd.nextInt(256))));
      const args = [...items].flatMap(([id, v]) => ['ITEM', id, v]);
      assert.equal(await a.callBuffer('VADD', key, 'uint8', String(dim), ...args), perList);
      live.set(key, items);
      segments.set(key, [itemBatch([...items])]);
    }

    // Member 3 dies; deletes and replacements are acknowledged by the other two (QUORUM).
    await cluster.kill9(2);
    for (const key of keys) {
      const items = live.get(key)!;
      const doomed = [...items.keys()].slice(0, 40);
      assert.equal(await a.call('VDEL', key, ...doomed), perList - 40);
      for (const id of doomed) items.delete(id);
      segments.get(key)!.push(encodeDeleteBatch(doomed.map((id) => Buffer.from(id))));
      // A re-added id: the old copy is deleted by the same op, and compacted away too.
      const again = [...items.keys()][0]!;
      const v = Buffer.alloc(dim, 7);
      assert.equal(await a.callBuffer('VADD', key, 'uint8', String(dim), 'ITEM', again, v), perList - 40);
      items.set(again, v);
      readded.push(again);
      segments.get(key)!.push(Buffer.concat([encodeDeleteBatch([Buffer.from(again)]), itemBatch([[again, v]])]));
    }
    await cluster.startMember(2);
    await cluster.waitAllAlive(30_000);
    await cluster.waitHintsDrained(30_000);
    const members = [a, await connect(1), await connect(2)];

    // The background compaction (no explicit command) shrinks every replica's copy.
    const size = (segs: Buffer[]) => segs.reduce((n, b) => n + b.length, 0);
    const compacted = keys.map((k) => {
      const segs = segments.get(k)!;
      const pruned = pruneDeletedItems(segs);
      return size(segs.map((b, i) => pruned[i] ?? b));
    });
    const uncompacted = keys.map((k) => size(segments.get(k)!));
    let seen = '';
    await waitFor(
      'every member to hold the compacted lists',
      async () => {
        const all = await Promise.all(members.map((r) => Promise.all(keys.map((k) => r.strlen(k)))));
        seen = `want ${JSON.stringify(compacted)} (uncompacted ${JSON.stringify(uncompacted)}), members hold ${JSON.stringify(all)}`;
        return all.every((m) => m.every((n, i) => Number(n) === compacted[i]));
      },
      { timeoutMs: 30_000, intervalMs: 100, describe: () => seen },
    );
    for (let l = 0; l < lists; l++) assert.ok(compacted[l]! <= uncompacted[l]! - 40 * dim, 'at least the deleted vectors are gone');
    // The bytes freed show in the metrics. A member may also receive lists already compacted
    // elsewhere (read repair of a VADD/VDEL's quorum read carries the shorter payload), so
    // the work is counted where it was done: at least one member freed every byte.
    const freed = uncompacted.reduce((n, x) => n + x, 0) - compacted.reduce((n, x) => n + x, 0);
    const freedBy: number[] = [];
    for (let i = 0; i < members.length; i++) {
      const text = await metricsText(cluster.host(i), cluster.member(i).ports.admin);
      freedBy.push(metric(text, 'ragkv_pruned_bytes_total'));
      assert.equal(metric(text, 'ragkv_prune_queue'), 0);
      // Nothing is left to do.
      assert.deepEqual(await members[i]!.call('RAGKV.COMPACT', ...keys), ['records', lists, 'bytes_freed', 0]);
    }
    assert.ok(Math.max(...freedBy) >= freed, `a member reports the bytes it freed (${freed} at least): ${JSON.stringify(freedBy)}`);

    // Every member reads and searches the same live items: none lost, none deleted shown.
    for (const r of members) {
      for (const key of keys) {
        const ids = ((await r.callBuffer('VRANGE', key, '0', '-1', 'WITHVECTORS')) as [Buffer, number[]][]).map((x) => String(x[0]));
        assert.deepEqual(new Set(ids), new Set(live.get(key)!.keys()), `${key} on a member`);
        assert.equal(ids.length, live.get(key)!.size, 'one copy of the re-added id');
      }
      // The re-added items (all 7s) are the exact matches of this query, one per list.
      const q = Buffer.from(Float32Array.from({ length: dim }, () => 7).buffer);
      const reply = (await r.callBuffer('VSEARCH', String(lists), 'L2', q, 'KEYS', String(keys.length), ...keys)) as [Buffer, [Buffer, Buffer, Buffer][]];
      const hits = reply[1].map((h) => `${String(h[1])}@${String(h[2])}`);
      assert.deepEqual(hits.sort(), readded.map((id) => `${id}@0`).sort());
    }
  } finally {
    for (const c of clients) c.disconnect();
    await cluster.destroy();
  }
});
