/**
 * Crash safety: concurrent writers against a real server process, `kill -9` while they
 * run, restart on the same data. Every acknowledged write must be there: 0 lost of N.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { tempDir } from './helpers/tmp.js';
import { kill9, startNodeProcess, stopGracefully } from './helpers/process.js';

const writers = 24;
/** The kill comes once this many writes were acknowledged, mid-stream. */
const ackedBeforeKill = 3000;

test('kill -9 during concurrent writes loses no acknowledged write', { timeout: 120_000 }, async (t) => {
  const dir = tempDir('ragkv-crash-');
  try {
    const first = await startNodeProcess(dir.path);
    const ackedSets = new Map<string, string>();
    const ackedAppends: string[][] = Array.from({ length: writers }, () => []);
    let acked = 0;
    let failed = 0;
    let killing: Promise<void> | null = null;
    let reachedTarget!: () => void;
    const target = new Promise<void>((r) => (reachedTarget = r));

    const clients = Array.from({ length: writers }, () => new Redis({ port: first.ports.resp, host: '127.0.0.1', maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null, lazyConnect: true }));
    await Promise.all(clients.map((c) => c.connect()));
    const loops = clients.map(async (client, w) => {
      client.on('error', () => {});
      for (let i = 0; !killing; i++) {
        const key = `w${w}:k${i}`;
        const value = `v-${w}-${i}-${'x'.repeat(i % 200)}`;
        const token = `<${w}.${i}>`;
        try {
          // Half plain SETs, half APPENDs to one growing value per writer (append-only log).
          if (i % 2 === 0) {
            await client.set(key, value);
            ackedSets.set(key, value);
          } else {
            await client.append(`log:${w}`, token);
            ackedAppends[w]!.push(token);
          }
          if (++acked === ackedBeforeKill) reachedTarget();
        } catch {
          failed++; // in flight when the process died: not acknowledged, so not counted
          return;
        }
      }
    });
    await target;
    killing = kill9(first);
    await killing;
    await Promise.all(loops);
    clients.forEach((c) => c.disconnect());

    const restartStarted = Date.now();
    const second = await startNodeProcess(dir.path);
    const recoverMs = Date.now() - restartStarted;
    const client = new Redis({ port: second.ports.resp, host: '127.0.0.1' });
    try {
      let lost = 0;
      const keys = [...ackedSets.keys()];
      for (let i = 0; i < keys.length; i += 500) {
        const batch = keys.slice(i, i + 500);
        const values = await client.mget(...batch);
        batch.forEach((k, j) => {
          if (values[j] !== ackedSets.get(k)) lost++;
        });
      }
      let appendsChecked = 0;
      for (let w = 0; w < writers; w++) {
        const log = (await client.get(`log:${w}`)) ?? '';
        // Acknowledged appends are all there, in order, and none twice.
        const tokens = log.match(/<\d+\.\d+>/g) ?? [];
        const seen = new Set(tokens);
        assert.equal(seen.size, tokens.length, `writer ${w}: an append was applied twice`);
        let pos = 0;
        for (const tok of ackedAppends[w]!) {
          const at = log.indexOf(tok, pos);
          if (at < 0) lost++;
          else pos = at + tok.length;
          appendsChecked++;
        }
      }
      const total = ackedSets.size + appendsChecked;
      t.diagnostic(`acknowledged writes: ${total} (sets ${ackedSets.size}, appends ${appendsChecked}); lost: ${lost}; in flight at kill (failed, not acknowledged): ${failed}; restart to listening: ${recoverMs} ms`);
      assert.ok(total >= ackedBeforeKill, `${total} acknowledged writes checked`);
      assert.equal(lost, 0, `${lost} of ${total} acknowledged writes lost`);
    } finally {
      client.disconnect();
      assert.equal(await stopGracefully(second), 0, 'the restarted server shuts down cleanly');
    }
  } finally {
    dir.cleanup();
  }
});
