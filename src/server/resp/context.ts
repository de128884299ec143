/** What every RESP connection shares with its server: engine, limits, logger, metrics, stats. */
import type { Logger } from 'pino';
import type { Limits } from '../../common/limits.js';
import type { KvApi } from '../../coordinator/api.js';
import type { RequestMetrics } from '../metrics.js';
import type { ScanCursors } from './scan-cursors.js';

/** A pino-compatible logger (pino itself fits). */
export type RespLogger = Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;

/** One connected client as other connections see it (CLIENT LIST, INFO). */
export interface ClientView {
  clientInfoLine(): string;
}

export interface RespStats {
  connectionsReceived: number;
  connectionsRejected: number;
  commandsProcessed: number;
}

/** Server-wide state a connection reads. */
export interface ServerContext {
  readonly kv: KvApi;
  readonly limits: Limits;
  readonly logger: RespLogger;
  readonly metrics: RequestMetrics;
  readonly info: (() => Record<string, string | number>) | undefined;
  readonly cursors: ScanCursors;
  readonly clients: ReadonlySet<ClientView>;
  readonly startedMs: number;
  readonly stats: RespStats;
  port: number;
}
