/**
 * One process per data directory: the store keeps counters and namespace ids in memory, so
 * a second process on the same files would corrupt them. The lock is `ragkv.pid`, a
 * symbolic link whose target is the owner's pid (`readlink ragkv.pid`): creating it is
 * atomic, and unlike a file's contents its target needs no data block, so a node can start
 * on a full disk. A lock left by a killed process (its pid no longer runs) is taken over,
 * so a crash needs no manual repair. A regular file of that name (older ragkv) holding a
 * pid is honoured the same way.
 */
import { readFileSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';

export interface DataDirLock {
  release(): void;
}

export function acquireDataDirLock(dataDir: string): DataDirLock {
  const path = join(dataDir, 'ragkv.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      symlinkSync(String(process.pid), path);
      return { release: () => rmSync(path, { force: true }) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(lockOwner(path).trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isRunning(pid)) {
        throw new Error(`data directory '${dataDir}' is in use by process ${pid} (lock file ${path})`);
      }
      rmSync(path, { force: true }); // stale: its process is gone
    }
  }
  throw new Error(`could not lock data directory '${dataDir}' (lock file ${path})`);
}

/** The pid a lock names: a link's target, or a regular file's text; '' once it is gone. */
function lockOwner(path: string): string {
  try {
    return readlinkSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return '';
    if (code !== 'EINVAL') throw err; // EINVAL: not a link
  }
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
