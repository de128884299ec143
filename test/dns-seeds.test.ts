/** Joining through a DNS name (what a Kubernetes headless service gives): real processes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { resolveSeeds } from '../src/node/seeds.js';
import { tempDir } from './helpers/tmp.js';
import { startNodeProcess, stopGracefully } from './helpers/process.js';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

test('dns:<name>:<port> seeds resolve to every address of the name; plain seeds pass through', async () => {
  const seeds = await resolveSeeds(['dns:localhost:7380', '10.1.2.3:7380', 'dns:no-such-host.invalid:7380']);
  assert.ok(seeds.includes('127.0.0.1:7380'), `localhost resolved: ${seeds}`);
  assert.ok(seeds.includes('10.1.2.3:7380'));
  assert.ok(!seeds.some((s) => s.includes('invalid')), 'an unresolvable name adds nothing (joining retries later)');
});

test('a member joins a cluster through a DNS seed', { timeout: 60_000 }, async () => {
  const dir = tempDir('ragkv-dns-');
  const p1 = await freePort();
  const p2 = await freePort();
  const n1 = await startNodeProcess(`${dir.path}/n1`, ['--node-id', 'n1', '--peer-port', String(p1), '--seeds', `127.0.0.1:${p1}`]);
  const n2 = await startNodeProcess(`${dir.path}/n2`, ['--node-id', 'n2', '--peer-port', String(p2), '--seeds', `dns:localhost:${p1}`]);
  try {
    const alive = async (admin: number) => {
      const c = (await (await fetch(`http://127.0.0.1:${admin}/cluster`)).json()) as { members: { id: string; status: string }[] };
      return c.members.filter((m) => m.status === 'alive').map((m) => m.id).sort();
    };
    const deadline = Date.now() + 20_000;
    let seen: string[] = [];
    while (Date.now() < deadline) {
      seen = await alive(n1.ports.admin);
      if (seen.length === 2) break;
      await new Promise((r) => setTimeout(r, 100)); // polling /cluster: there is no event to await across processes
    }
    assert.deepEqual(seen, ['n1', 'n2'], 'n1 sees the member that joined through the DNS seed');
    assert.deepEqual(await alive(n2.ports.admin), ['n1', 'n2']);
  } finally {
    await Promise.all([stopGracefully(n1), stopGracefully(n2)]);
    dir.cleanup();
  }
});
