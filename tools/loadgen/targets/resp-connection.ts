/**
 * ioredis connections for the RESP targets (ragkv over RESP, Redis): connected before use,
 * and then never queueing: with `enableOfflineQueue: false` a command issued while the
 * connection is down fails at once, and `maxRetriesPerRequest: 1` bounds how often a
 * command in flight is resent after a reconnect. A benchmark must see errors as errors,
 * not as latency hidden in a client-side queue.
 */
import { Redis } from 'ioredis';
import { parseEndpoint } from './spec.js';

export interface RespConnectOptions {
  connectTimeoutMs?: number;
  /** Per-command deadline; default none (the load generator measures latency). */
  commandTimeoutMs?: number;
}

export async function connectResp(endpoint: string, options: RespConnectOptions = {}): Promise<Redis> {
  const { host, port } = parseEndpoint(endpoint);
  const redis = new Redis({
    host,
    port,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: options.connectTimeoutMs ?? 10_000,
    ...(options.commandTimeoutMs ? { commandTimeout: options.commandTimeoutMs } : {}),
    // A failed first connect is reported to the caller rather than retried forever.
    retryStrategy: (times) => (times > 3 ? null : Math.min(times * 100, 1000)),
  });
  // Errors surface through the commands that hit them; without a listener ioredis logs each.
  redis.on('error', () => {});
  try {
    await redis.connect(); // resolves once the connection is ready (ready check passed)
  } catch (e) {
    redis.disconnect();
    throw new Error(`cannot connect to ${endpoint}: ${(e as Error).message}`);
  }
  return redis;
}

/** QUIT politely, and disconnect regardless, so no socket or timer outlives `close()`. */
export async function closeResp(redis: Redis): Promise<void> {
  if (redis.status === 'end') return;
  try {
    await redis.quit();
  } catch {
    // already closing or broken: disconnect below
  }
  redis.disconnect();
}
