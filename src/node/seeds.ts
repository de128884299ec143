/**
 * Seed addresses for joining: `host:port` as given, and `dns:<name>:<port>` resolved to every
 * address of a name (a Kubernetes headless service lists one address per ready pod).
 */
import { lookup } from 'node:dns/promises';

export async function resolveSeeds(seeds: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const seed of seeds) {
    if (!seed.startsWith('dns:')) {
      out.push(seed);
      continue;
    }
    const [, name, port] = seed.split(':') as [string, string, string];
    try {
      const addrs = await lookup(name, { all: true });
      for (const a of addrs) out.push(a.family === 6 ? `[${a.address}]:${port}` : `${a.address}:${port}`);
    } catch {
      // Not resolvable yet (no pod ready): joining retries later.
    }
  }
  return out;
}
