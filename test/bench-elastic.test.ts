/**
 * `npm run bench:elastic` as a real process on a tiny run (a few thousand keys, windows of
 * seconds): it exits 0, the join and the restore settle, and its JSON line carries every
 * figure the report is made of. A smoke test of the benchmark, not a measurement.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from './helpers/tmp.js';

// Compiled to dist/test/: the benchmark is dist/tools/bench/elastic.js.
const script = fileURLToPath(new URL('../tools/bench/elastic.js', import.meta.url));

const tmp = tempDir('ragkv-bench-elastic-');
after(() => tmp.cleanup());

/** The environment without RAGKV_* variables (they would configure the members it starts). */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RAGKV_')));
}

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

interface Window {
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  failed: number;
  wrong: number;
}

interface Result {
  kind: string;
  options: { keys: number };
  load: { keys: number; dbsizes: number[] };
  join: {
    seconds: number;
    epochBefore: number;
    epochAfter: number;
    streamedKeys: number;
    streamedBytes: number;
    cleanup: { done: boolean; dbsizes: number[] };
    clients: { baseline: Window; move: Window; cleanup: Window; after: Window | null; failed: number; wrong: number };
    ratios: { throughput: number; p99: number };
  };
  restore: { seconds: number; streamedKeys: number; keysBefore: number; keysAfter: number; epochAfter: number; epochBefore: number };
  idle: { seconds: number; members: { id: string; cpuPct: number | null; aeRounds: number | null; aeSlotsDiffering: number | null }[] };
  aims: Record<string, boolean>;
}

test('bench:elastic on a tiny cluster: the join and the restore settle, no request fails, the JSON line has every figure', { timeout: 180_000 }, async () => {
  const keys = 2000;
  const out = path.join(tmp.path, 'out');
  // prettier-ignore
  const r = await run([
    '--keys', String(keys), '--value-bytes', '256', '--clients', '2', '--load-connections', '2',
    '--baseline-seconds', '2', '--after-seconds', '1', '--idle-seconds', '3', '--ae-wait', '0', '--wait-quiet', '0',
    '--data', path.join(tmp.path, 'data'), '--out', out,
  ]);
  assert.equal(r.code, 0, `exit code ${r.code}\n--- stderr ---\n${r.stderr.slice(-4000)}`);
  const lines = r.stdout.trim().split('\n');
  const res = JSON.parse(lines[lines.length - 1]!) as Result;
  assert.equal(res.kind, 'bench:elastic');
  assert.match(r.stdout, /### Client load/);
  assert.match(r.stdout, /\| join: start of n4 to settled/);

  assert.deepEqual(res.load.dbsizes, [keys, keys, keys], 'every member holds every key before the join (N=3 on 3 members)');
  assert.ok(res.join.epochAfter > res.join.epochBefore, 'the join moved the placement epoch on');
  assert.ok(res.join.seconds > 0);
  assert.ok(res.join.streamedKeys > 0 && res.join.streamedBytes > 0, 'n4 streamed keys');
  assert.ok(res.join.cleanup.done, 'the old owners dropped the moved slots');
  assert.equal(res.join.cleanup.dbsizes.reduce((a, b) => a + b, 0), 3 * keys, '3 copies of every key on 4 members');
  for (const w of [res.join.clients.baseline, res.join.clients.move, res.join.clients.cleanup]) {
    assert.ok(w.opsPerSec > 0 && w.p50Ms > 0 && w.p99Ms >= w.p50Ms);
  }
  assert.equal(res.join.clients.failed, 0, 'no request failed');
  assert.equal(res.join.clients.wrong, 0, 'no GET of a loaded key answered nil');
  assert.ok(Number.isFinite(res.join.ratios.throughput) && Number.isFinite(res.join.ratios.p99));

  assert.ok(res.restore.epochAfter > res.restore.epochBefore, 'the restore moved the epoch on');
  assert.ok(res.restore.streamedKeys > 0, 'the wiped member streamed its keys back');
  assert.equal(res.restore.keysAfter, res.restore.keysBefore, 'the restored member holds what it held');

  assert.deepEqual(res.idle.members.map((m) => m.id), ['n1', 'n2', 'n3', 'n4']);
  for (const m of res.idle.members) {
    assert.equal(typeof m.cpuPct, 'number', `${m.id}: CPU read from /metrics`);
    assert.ok((m.aeRounds ?? 0) >= 1, `${m.id}: anti-entropy ran in the idle window`);
    assert.equal(m.aeSlotsDiffering, 0, `${m.id}: nothing differs once settled`);
  }
  assert.deepEqual(Object.keys(res.aims).sort(), ['idleCpuAtMost2Pct', 'noFailedRequests', 'p99AtMost2x', 'throughputAtLeast08x']);
  assert.equal(readdirSync(out).filter((f) => /^elastic-.*\.json$/.test(f)).length, 1, 'the JSON file went to --out');
});
