/**
 * `npm run sim -- --seeds N [--start S] [--duration MS] [--nodes K]`: runs the cluster
 * simulation for N seeds and prints one line per seed; a failing seed prints its violations,
 * its faults and the tail of its trace, and `--seeds 1 --start <seed>` replays it exactly.
 */
import { runClusterSim } from './cluster-sim.js';
import { runElasticSim } from './elastic-sim.js';

function arg(argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(argv[i + 1]);
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`'--${name}' must be a non-negative integer, got '${argv[i + 1]}'`);
  return v;
}

export async function simMain(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    console.log('usage: npm run sim -- [--seeds N (10)] [--start S (1)] [--duration MS (20000)] [--nodes K (5)]');
    console.log('       npm run sim -- --elastic [--seeds N] [--start S]   membership changes (join, leave, restore, remove) under faults');
    return 0;
  }
  const seeds = arg(argv, 'seeds', 10);
  const first = arg(argv, 'start', 1);
  if (argv.includes('--elastic')) return elasticMain(first, seeds);
  const durationMs = arg(argv, 'duration', 20_000);
  const nodes = arg(argv, 'nodes', 5);
  let failures = 0;
  for (let seed = first; seed < first + seeds; seed++) {
    const t = Date.now();
    const r = await runClusterSim(seed, { durationMs, nodes });
    const line =
      `seed ${seed}: ${r.ok ? 'ok' : 'FAILED'}  acked ${r.writesAcknowledged} (appends ${r.appendsAcknowledged}, vector items ${r.itemsAcknowledged}, deleted ${r.itemsDeleted}), failed ${r.writesFailed}, ` +
      `session reads ${r.sessionReads}, faults ${r.faults.length}, hints delivered ${r.hintsDelivered}, read repairs ${r.readRepairs}, converged ${r.convergeMs} ms after heal, ` +
      `clocks ${Object.values(r.clockOffsetsMs).map((o) => (o > 0 ? `+${o}` : String(o))).join('/')} ms, ${r.lmdbMembers.length ? `LMDB ${r.lmdbMembers.join(',')}` : 'memory'}, ` +
      `${Date.now() - t} ms real`;
    console.log(line);
    if (!r.ok) {
      failures++;
      console.log(`  violations:\n    ${r.violations.slice(0, 20).join('\n    ')}`);
      console.log(`  faults:\n    ${r.faults.join('\n    ')}`);
      console.log(`  trace tail:\n${r.traceTail}`);
      console.log(`  replay: npm run sim -- --seeds 1 --start ${seed} --duration ${durationMs} --nodes ${nodes}`);
    }
  }
  console.log(`${seeds - failures} passed, ${failures} failed`);
  return failures === 0 ? 0 : 1;
}

async function elasticMain(first: number, seeds: number): Promise<number> {
  let failures = 0;
  for (let seed = first; seed < first + seeds; seed++) {
    const t = Date.now();
    const r = await runElasticSim(seed);
    console.log(
      `seed ${seed}: ${r.ok ? 'ok' : 'FAILED'}  acked ${r.writesAcknowledged}, failed ${r.writesFailed}, session reads ${r.sessionReads}, cross reads ${r.crossReads} (unavailable ${r.readsUnavailable}), ` +
        `streamed ${r.keysStreamed} keys, anti-entropy repaired ${r.keysRepairedByAntiEntropy}, epoch ${r.finalEpoch}, ${Date.now() - t} ms real`,
    );
    if (!r.ok) {
      failures++;
      console.log(`  violations:\n    ${r.violations.slice(0, 20).join('\n    ')}`);
      console.log(`  steps:\n    ${r.steps.join('\n    ')}`);
      console.log(`  trace tail:\n${r.traceTail}`);
      console.log(`  replay: npm run sim -- --elastic --seeds 1 --start ${seed}`);
    }
  }
  console.log(`${seeds - failures} passed, ${failures} failed`);
  return failures === 0 ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  simMain(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
