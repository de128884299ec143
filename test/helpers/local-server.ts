/** A single node on a temp LMDB directory with its RESP server and an ioredis client, for one test. */
import { Redis } from 'ioredis';
import type { Limits } from '../../src/common/limits.js';
import { makeLimits } from '../../src/common/limits.js';
import { openLocalKv, type KvApi } from '../../src/coordinator/index.js';
import { noMetrics } from '../../src/server/metrics.js';
import { startRespServer } from '../../src/server/resp/index.js';
import { tempDir } from './tmp.js';

const quiet = { info() {}, warn() {}, error() {}, debug() {} };

/** Runs `fn` with an ioredis client of a fresh single node (and its engine); closes and removes everything after. */
export async function withLocalServer(fn: (redis: Redis, kv: KvApi) => Promise<void>, limits: Partial<Limits> = {}): Promise<void> {
  const dir = tempDir();
  const local = await openLocalKv({ path: dir.path, durability: 'none', limits });
  const server = await startRespServer({ kv: local.kv, limits: makeLimits(limits), host: '127.0.0.1', port: 0, logger: quiet, metrics: noMetrics });
  const redis = new Redis({ port: server.port });
  try {
    await fn(redis, local.kv);
  } finally {
    redis.disconnect();
    await server.close();
    await local.close();
    dir.cleanup();
  }
}
