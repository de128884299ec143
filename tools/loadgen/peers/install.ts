/**
 * Installs the Debian packages a peer needs when its binary is missing:
 * `redis-server` + `redis-tools` (redis-server, redis-cli) and `etcd-server` (/usr/bin/etcd).
 * Runs `apt-get install -y`, and `apt-get update` then the install again if that fails.
 * Needs root (CI runs as root); otherwise fails with the command to run by hand.
 */
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { run } from './process.js';

export interface PackageNeed {
  /** A binary on PATH (or in /usr/bin, /usr/sbin) whose presence means "installed". */
  binary: string;
  /** Debian packages that provide it. */
  packages: string[];
}

export const redisPackages: PackageNeed[] = [
  { binary: 'redis-server', packages: ['redis-server', 'redis-tools'] },
];
export const etcdPackages: PackageNeed[] = [{ binary: 'etcd', packages: ['etcd-server'] }];

/** Absolute path of an executable, or null. */
export function findBinary(name: string): string | null {
  const dirs = [...(process.env['PATH'] ?? '').split(path.delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

// apt holds a lock: installs from one process run one at a time.
let queue: Promise<unknown> = Promise.resolve();

/** Resolves once every need's binary exists, installing packages as needed. */
export function ensureDebianPackages(needs: PackageNeed[], log: (line: string) => void): Promise<void> {
  const next = queue.then(() => install(needs, log));
  queue = next.catch(() => {});
  return next;
}

async function install(needs: PackageNeed[], log: (line: string) => void): Promise<void> {
  const missing = needs.filter((need) => findBinary(need.binary) === null);
  if (missing.length === 0) return;
  const packages = [...new Set(missing.flatMap((need) => need.packages))];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const installArgs = ['install', '-y', '--no-install-recommends', ...packages];
  log(`missing ${missing.map((n) => n.binary).join(', ')}: apt-get ${installArgs.join(' ')}`);
  let result = await run('apt-get', installArgs, env);
  if (result.code !== 0) {
    log(`apt-get install failed (exit ${result.code}); running apt-get update and trying again`);
    const update = await run('apt-get', ['update'], env);
    if (update.code !== 0) log(`apt-get update failed (exit ${update.code}): ${lastLines(update.output)}`);
    result = await run('apt-get', installArgs, env);
  }
  if (result.code !== 0) {
    throw new Error(
      `could not install ${packages.join(' ')} (apt-get exit ${result.code}); as root run: ` +
        `apt-get update && apt-get install -y ${packages.join(' ')}\n${lastLines(result.output)}`,
    );
  }
  const stillMissing = missing.filter((need) => findBinary(need.binary) === null);
  if (stillMissing.length > 0) {
    throw new Error(`installed ${packages.join(' ')} but ${stillMissing.map((n) => n.binary).join(', ')} is still not on PATH`);
  }
  log(`installed ${packages.join(' ')}`);
}

function lastLines(text: string, n = 15): string {
  return text.trimEnd().split('\n').slice(-n).join('\n');
}
