/** What every RESP connection shares with its server: engine, limits, logger, metrics, stats. */
import type { Logger } from 'pino';
import type { Limits } from '../../common/limits.js';
import type { Consistency, KvApi } from '../../coordinator/api.js';
import type { RequestMetrics } from '../metrics.js';
import type { PlacementTable } from '../../cluster/placement/table.js';
import type { OutputBudget } from './output-budget.js';
import type { ScanCursors } from './scan-cursors.js';
import type { Encoder, ReplyWriter } from './reply.js';

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
  /** Unsent reply bytes of all clients, under `outputBuffersTotalBytesMax`. */
  readonly output: OutputBudget;
  /** The cluster this server's node is a member of (CLUSTER commands); undefined on a single node. */
  readonly topology: RespTopology | undefined;
  port: number;
}

/**
 * A connection as command handlers see it (implemented by Connection): the store at the
 * connection's levels, its database, its reply buffer, and the ways to reply in order.
 */
export interface Client extends ClientView {
  readonly id: number;
  readonly server: ServerContext;
  readonly limits: Limits;
  /** The store as this connection sees it: the server's, at this connection's consistency and session. */
  readonly kv: KvApi;
  /** Levels set by RAGKV.CONSISTENCY; unset ones are the node's defaults. */
  readonly consistency: Partial<Consistency>;
  /** The output of the current batch; handlers write replies here. */
  readonly w: ReplyWriter;
  readonly ns: string;
  readonly db: number;
  name: string | null;
  /** Replies an error in command order (queued behind writes still in flight). */
  fail(line: string, code?: string): void;
  /** Replies the result of `promise` (encoded by `encode`) once earlier replies are out. */
  defer<T>(promise: Promise<T>, encode: Encoder<T>): void;
  select(db: number): void;
  quit(): void;
  reset(): void;
  setConsistency(levels: Partial<Consistency>): void;
}

/** What CLUSTER commands read: this member, the placement table and members' client addresses. */
export interface RespTopology {
  /** This member's id. */
  self: string;
  /** The placement table in force; null before the cluster has formed. */
  table(): PlacementTable | null;
  /** A member's RESP address, `host:port`, as it publishes it; undefined while unknown. */
  clientAddress(id: string): string | undefined;
}
