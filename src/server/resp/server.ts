/** The RESP TCP server: accepts clients up to `connectionsMax` and runs one Connection each. */
import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import type { Limits } from '../../common/limits.js';
import type { KvApi } from '../../coordinator/api.js';
import type { RequestMetrics } from '../metrics.js';
import type { RespTopology } from './cluster.js';
import { Connection } from './connection.js';
import type { RespLogger, ServerContext } from './context.js';
import { endLingering } from './linger.js';
import { OutputBudget } from './output-budget.js';
import { ScanCursors } from './scan-cursors.js';

export interface RespServerOptions {
  kv: KvApi;
  limits: Limits;
  host: string;
  /** 0 picks a free port; the bound one is `RespServer.port`. */
  port: number;
  logger: RespLogger;
  metrics: RequestMetrics;
  /** Extra `key: value` lines for the `# Server` section of INFO. */
  info?: () => Record<string, string | number>;
  /** Set on a cluster member: CLUSTER SLOTS/SHARDS/NODES/INFO/MYID, READONLY... answer from it. */
  topology?: RespTopology;
}

export interface RespServer {
  /** The port actually bound. */
  port: number;
  /** Stops accepting, closes every connection, resolves when the listener is closed. */
  close(): Promise<void>;
  connectionCount(): number;
}

const maxClientsReply = Buffer.from('-ERR max number of clients reached\r\n');

/** Starts the RESP server; resolves once it is listening. */
export async function startRespServer(options: RespServerOptions): Promise<RespServer> {
  const { logger, metrics, limits } = options;
  const connections = new Set<Connection>();
  /** Sockets refused over `connectionsMax`, until they close (at most closeLingerMsMax). */
  const refused = new Set<Socket>();
  const context: ServerContext = {
    kv: options.kv,
    limits,
    logger,
    metrics,
    info: options.info,
    cursors: new ScanCursors(),
    clients: connections,
    startedMs: Date.now(),
    stats: { connectionsReceived: 0, connectionsRejected: 0, commandsProcessed: 0 },
    output: new OutputBudget(connections, limits.outputBuffersTotalBytesMax),
    topology: options.topology,
    port: options.port,
  };
  let nextId = 1;
  // allowHalfOpen: a client that ends its side after sending still gets every reply.
  const server: Server = createServer({ allowHalfOpen: true, noDelay: true });

  server.on('connection', (socket: Socket) => {
    context.stats.connectionsReceived++;
    socket.on('error', (err) => logger.debug({ err }, 'RESP socket error'));
    if (connections.size >= limits.connectionsMax) {
      context.stats.connectionsRejected++;
      metrics.disconnected('resp', 'connectionsMax');
      logger.warn({ connectionsMax: limits.connectionsMax }, "RESP client refused: over limit 'connectionsMax'");
      refused.add(socket);
      socket.on('close', () => refused.delete(socket));
      endLingering(socket, limits.closeLingerMsMax, logger, null, maxClientsReply);
      return;
    }
    const conn = new Connection(nextId++, socket, context);
    connections.add(conn);
    metrics.connections('resp', 1);
    socket.on('close', () => {
      conn.onClose();
      connections.delete(conn);
      metrics.connections('resp', -1);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => logger.error({ err }, 'RESP server error'));
  const port = (server.address() as AddressInfo).port;
  context.port = port;
  logger.info({ host: options.host, port }, 'RESP server listening');

  return {
    port,
    connectionCount: () => connections.size,
    close: () =>
      new Promise<void>((resolve) => {
        // The listener closes when every socket has: destroy them all, lingering ones included.
        server.close(() => resolve());
        for (const conn of connections) conn.destroy();
        for (const socket of refused) socket.destroy();
      }),
  };
}
