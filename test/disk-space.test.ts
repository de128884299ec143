/** DiskSpace: when a disk counts as full, when it stops, and what it reports (free bytes injected). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DiskSpace, type DiskState } from '../src/storage/disk-space.js';
import { KvError } from '../src/common/errors.js';

const ENOSPC = 28;
const EDQUOT = 122;
const EIO = 5;
const MiB = 1024 * 1024;

function diskWith(freeBytesMin: number): { disk: DiskSpace; setFree(bytes: number): void; changes: DiskState[] } {
  let free = 100 * MiB;
  const disk = new DiskSpace('/data', freeBytesMin, () => free);
  const changes: DiskState[] = [];
  disk.onChange((s) => changes.push(s));
  return { disk, setFree: (bytes) => (free = bytes), changes };
}

test('under diskFreeBytesMin the disk is full; at or over it again, not full; one change each way', () => {
  const { disk, setFree, changes } = diskWith(10 * MiB);
  disk.check();
  assert.equal(disk.isFull, false);
  setFree(10 * MiB - 1);
  disk.check();
  disk.check();
  assert.equal(disk.isFull, true);
  assert.match(disk.state().reason, /^10485759 bytes free, under limit 'diskFreeBytesMin' \(10485760\)$/);
  setFree(10 * MiB);
  disk.check();
  assert.equal(disk.isFull, false);
  assert.deepEqual(
    changes.map((c) => c.full),
    [true, false],
  );
  assert.equal(changes[1]!.reason, '');
  assert.equal(changes[1]!.freeBytes, 10 * MiB);
});

test('a commit failed with ENOSPC or EDQUOT: full until more is free than when it failed', () => {
  for (const code of [ENOSPC, EDQUOT]) {
    const { disk, setFree, changes } = diskWith(1);
    setFree(3 * MiB);
    assert.equal(disk.commitFailed(code), true);
    assert.equal(disk.isFull, true);
    assert.match(disk.state().reason, /^a commit failed with (ENOSPC|EDQUOT), 3145728 bytes free$/);
    disk.check(); // as free as when the commit failed: a retry would fail the same way
    assert.equal(disk.isFull, true, 'no flapping while nothing was freed');
    setFree(3 * MiB + 4096);
    disk.check();
    assert.equal(disk.isFull, false);
    assert.equal(changes.length, 2);
  }
});

test('EIO is a lack of space only with little left free (LMDB reports a short write as EIO)', () => {
  const short = diskWith(1);
  short.setFree(0);
  assert.equal(short.disk.commitFailed(EIO), true);
  assert.match(short.disk.state().reason, /EIO \(a short write\), 0 bytes free/);

  const broken = diskWith(1);
  broken.setFree(50 * MiB);
  assert.equal(broken.disk.commitFailed(EIO), false, 'an I/O error on a disk with room');
  assert.equal(broken.disk.isFull, false);
  for (const code of [undefined, -30792 /* MDB_MAP_FULL */, 'EIO']) assert.equal(broken.disk.commitFailed(code), false);
  assert.equal(broken.changes.length, 0);
});

test('refusals are retryable DISK_FULL errors that say why, and are counted', () => {
  const { disk, setFree } = diskWith(1);
  setFree(0);
  disk.commitFailed(ENOSPC);
  const err = disk.refusal();
  disk.refusal();
  assert.ok(err instanceof KvError);
  assert.equal(err.code, 'DISK_FULL');
  assert.equal(err.retryable, true);
  assert.equal(err.message, 'no space left on the data disk (a commit failed with ENOSPC, 0 bytes free); writes are refused until space is freed, reads are served');
  assert.equal(disk.state().refusedWrites, 2);
});

test('a failed measurement changes nothing', () => {
  let fail = false;
  const disk = new DiskSpace('/data', 10, () => {
    if (fail) throw new Error('ENOENT');
    return 0;
  });
  disk.check();
  assert.equal(disk.isFull, true);
  fail = true;
  disk.check();
  assert.equal(disk.isFull, true);
  assert.ok(Number.isNaN(disk.state().freeBytes));
  assert.throws(() => new DiskSpace('/data', 0), /'diskFreeBytesMin' must be a positive integer, got 0/);
});
