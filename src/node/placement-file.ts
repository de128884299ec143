/**
 * Where a member keeps its placement table and its stream cursor: two small files in the
 * data directory, replaced atomically (write, fsync, rename), so a crash leaves the old or
 * the new one, never half of one. The table is what makes a restarted member know its slots
 * (and a member without one a new or wiped member).
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import path from 'node:path';
import type { PlacementPersistence } from '../cluster/placement/service.js';

function replace(file: string, data: Buffer | string): void {
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/**
 * The identity of this data directory: a random number made with it, so a member that comes
 * back on a wiped (or replaced) disk is told apart from one that kept its data.
 */
export function dataIdOf(dataDir: string): number {
  const file = path.join(dataDir, 'data-id');
  if (existsSync(file)) {
    const id = Number(readFileSync(file, 'utf8').trim());
    if (Number.isInteger(id) && id > 0 && id < 2 ** 32) return id;
  }
  const id = 1 + randomInt(2 ** 32 - 2);
  replace(file, `${id}\n`);
  return id;
}

export function placementFiles(dataDir: string): PlacementPersistence {
  const table = path.join(dataDir, 'placement.bin');
  const stream = path.join(dataDir, 'placement-stream.json');
  return {
    loadTable: () => (existsSync(table) ? readFileSync(table) : null),
    saveTable: async (b) => replace(table, b),
    loadStream: () => (existsSync(stream) ? readFileSync(stream, 'utf8') : null),
    saveStream: async (s) => replace(stream, s),
  };
}
