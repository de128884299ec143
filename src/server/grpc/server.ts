/** Binds the RawKV gRPC service to a port and shuts it down. */
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { KvApi } from '../../coordinator/api.js';
import type { Limits } from '../../common/limits.js';
import type { RequestMetrics } from '../metrics.js';
import { createRawKvHandlers, type GrpcLogger } from './handlers.js';
import { loadRawKvService } from '../../common/grpc/proto.js';

export interface GrpcServerOptions {
  kv: KvApi;
  limits: Limits;
  host: string;
  /** 0 picks a free port; `GrpcServer.port` reports it. */
  port: number;
  logger: GrpcLogger;
  metrics: RequestMetrics;
  /** How long close() lets calls in flight finish before cancelling them; default 5000. */
  shutdownGraceMs?: number;
}

export interface GrpcServer {
  /** The port actually bound. */
  port: number;
  /** Stops accepting calls, lets calls in flight finish within the grace period, then cancels the rest. */
  close(): Promise<void>;
}

const shutdownGraceMsDefault = 5000;

/** `host:port` as gRPC expects it, bracketing IPv6 literals. */
function addressOf(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Starts the RawKV gRPC server; resolves once the port is bound. */
export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  const { kv, limits, logger, metrics } = options;
  const server = new Server({
    'grpc.max_receive_message_length': limits.grpcMessageBytesMax,
    'grpc.max_send_message_length': limits.grpcMessageBytesMax,
  });
  server.addService(loadRawKvService(), createRawKvHandlers({ kv, limits, logger, metrics }));

  const address = addressOf(options.host, options.port);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, ServerCredentials.createInsecure(), (error, boundPort) => {
      if (error) {
        server.forceShutdown();
        reject(new Error(`gRPC server could not bind ${address}: ${error.message}`));
      } else {
        resolve(boundPort);
      }
    });
  });
  logger.info({ host: options.host, port }, 'gRPC server listening');

  const graceMs = options.shutdownGraceMs ?? shutdownGraceMsDefault;
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      const deadline = setTimeout(() => {
        logger.warn({ port, graceMs }, 'gRPC calls still running after the shutdown grace period; cancelling them');
        server.forceShutdown();
        resolve();
      }, graceMs);
      server.tryShutdown(() => {
        clearTimeout(deadline);
        resolve();
      });
    });
    return closing;
  };
  return { port, close };
}
