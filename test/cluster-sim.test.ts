/**
 * The cluster simulator in CI: a time-bounded batch of seeds, each a full run with crashes,
 * restarts, partitions, loss and duplication; any failing seed is printed with its replay
 * command. More seeds: `npm run sim -- --seeds 200`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runClusterSim } from '../testing/cluster-sim.js';
import { runElasticSim } from '../testing/elastic-sim.js';

const budgetMs = Number(process.env.RAGKV_SIM_BUDGET_MS ?? 60_000);
const seedsMax = 40;

test('simulated cluster: no acknowledged write lost, replicas converge (seed batch)', { timeout: budgetMs + 60_000 }, async (t) => {
  const started = Date.now();
  let runs = 0;
  let acked = 0;
  let lmdbRuns = 0;
  let sessionReads = 0;
  for (let seed = 1; seed <= seedsMax && Date.now() - started < budgetMs; seed++) {
    // Odd seeds run 3 members (every member replicates every key: no fallback exists),
    // even seeds 5 (sloppy quorum through fallback members).
    const nodes = seed % 2 === 1 ? 3 : 5;
    const r = await runClusterSim(seed, { durationMs: 10_000, nodes });
    runs++;
    acked += r.writesAcknowledged;
    assert.ok(r.ok, `seed ${seed} failed (replay: npm run sim -- --seeds 1 --start ${seed} --duration 10000 --nodes ${nodes}):\n${r.violations.join('\n')}\nfaults: ${r.faults.join('; ')}\n${r.traceTail}`);
    assert.ok(r.writesAcknowledged > 0, `seed ${seed} acknowledged no write`);
    if (r.lmdbMembers.length > 0) lmdbRuns++;
    sessionReads += r.sessionReads;
  }
  assert.ok(lmdbRuns > 0, 'some seeds ran members on LMDB (restarts reopen their files)');
  t.diagnostic(`${runs} seeds, ${acked} acknowledged writes checked, ${sessionReads} session reads after own writes, ${Date.now() - started} ms`);
  assert.ok(sessionReads > 0, 'sessions read their own writes back (read-your-writes is checked)');
  assert.ok(runs >= 3, `only ${runs} seeds fit the budget`);
});

test('a seed replays exactly: same trace, same outcome (members on LMDB and clocks apart included)', async () => {
  const a = await runClusterSim(4242, { durationMs: 5_000 });
  const b = await runClusterSim(4242, { durationMs: 5_000 });
  assert.deepEqual(a.lmdbMembers, ['n1', 'n2'], 'this seed runs two members on LMDB');
  assert.ok(Object.values(a.clockOffsetsMs).some((o) => o !== 0), 'and members with clocks apart');
  assert.equal(a.traceDigest, b.traceDigest);
  assert.deepEqual(a.faults, b.faults);
  assert.equal(a.writesAcknowledged, b.writesAcknowledged);
  const c = await runClusterSim(4243, { durationMs: 5_000 });
  assert.notEqual(a.traceDigest, c.traceDigest, 'another seed is another run');
});

test('seed 9009: an LMDB member restarted soon after its crash reopens its files (the close had settled; it once hung here)', { timeout: 60_000 }, async () => {
  const r = await runClusterSim(9009, { durationMs: 20_000, nodes: 5 });
  assert.deepEqual(r.lmdbMembers, ['n1', 'n2']);
  assert.ok(r.faults.some((f) => /restart n[12]\b/.test(f)), `an LMDB member restarted (${r.faults.join('; ')})`);
  assert.ok(r.ok, r.violations.join('\n'));
});

test('simulated membership changes: join in a partition, leave with a crash mid-change, wiped disk, removal, two joins at once; every step checked (seed batch)', { timeout: 240_000 }, async (t) => {
  const started = Date.now();
  let runs = 0;
  let lost = 0;
  for (let seed = 1; seed <= 20 && (runs < 2 || Date.now() - started < budgetMs / 2); seed++) {
    const r = await runElasticSim(seed);
    runs++;
    assert.ok(r.ok, `seed ${seed} failed (replay: npm run sim -- --elastic --seeds 1 --start ${seed}):\n${r.violations.slice(0, 20).join('\n')}\nsteps: ${r.steps.join('; ')}\n${r.traceTail}`);
    assert.ok(r.steps.at(-1)?.endsWith('done'), `seed ${seed} ran every step: ${r.steps.join('; ')}`);
    assert.ok(r.writesAcknowledged > 100 && r.sessionReads > 100 && r.crossReads > 100, `seed ${seed} checked reads (${r.sessionReads} session, ${r.crossReads} cross)`);
    assert.ok(r.keysStreamed > 0, 'keys were streamed');
    lost += r.proposalsLost;
    if (runs === 1) t.diagnostic(`seed ${seed}: ${r.writesAcknowledged} writes, ${r.keysStreamed} keys streamed, ${r.keysRepairedByAntiEntropy} repaired by anti-entropy, epoch ${r.finalEpoch}`);
  }
  t.diagnostic(`${runs} elastic seeds in ${Date.now() - started} ms`);
  assert.ok(lost > 0, 'two proposals made at once from one table were exercised (one lost, and was made again)');
});

test('an elastic seed replays exactly', { timeout: 120_000 }, async () => {
  const a = await runElasticSim(77);
  const b = await runElasticSim(77);
  assert.equal(a.traceDigest, b.traceDigest);
  assert.deepEqual(a.steps, b.steps);
  assert.equal(a.writesAcknowledged, b.writesAcknowledged);
});
