/**
 * The HTTP admin port: liveness (/health), readiness (/ready) and Prometheus metrics
 * (/metrics), on plain node:http. Routes are a table, so /cluster and later routes are one
 * entry each; every answer is JSON except the metrics text.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../common/logger.js';
import type { MetricsRegistry } from './metrics.js';

/** What a route answers. */
export interface AdminResponse {
  status: number;
  contentType: string;
  body: string;
}

/** A GET route; it may be async (e.g. a scrape or a cluster view). */
export type AdminRoute = () => AdminResponse | Promise<AdminResponse>;

/** Readiness with a reason an operator can act on. */
export interface ReadyState {
  ready: boolean;
  reason?: string;
}

export interface AdminServerOptions {
  host: string;
  /** 0 picks a free port; the bound one is returned. */
  port: number;
  metrics: MetricsRegistry;
  /** Liveness: true, or details merged into the answer (`status` other than 'ok' means unhealthy). */
  health: () => boolean | Record<string, unknown>;
  /** Readiness to serve traffic: false while starting, draining or shutting down. */
  ready: () => boolean | ReadyState;
  logger: Logger;
  /** Extra GET routes by exact path, e.g. `{ '/cluster': ... }`; they may not replace the built-in ones. */
  routes?: Record<string, AdminRoute>;
  /** POST routes (operations such as `/cluster/leave`), given the query string's parameters. */
  postRoutes?: Record<string, (params: URLSearchParams) => AdminResponse | Promise<AdminResponse>>;
}

export interface AdminServer {
  /** The port actually bound. */
  port: number;
  /** Stops accepting, closes idle keep-alive connections, resolves when all are closed. */
  close(): Promise<void>;
}

const jsonType = 'application/json; charset=utf-8';

function json(status: number, value: unknown): AdminResponse {
  return { status, contentType: jsonType, body: JSON.stringify(value) + '\n' };
}

/** The built-in routes. */
function builtinRoutes(options: AdminServerOptions): Map<string, AdminRoute> {
  return new Map<string, AdminRoute>([
    [
      '/health',
      () => {
        const health = options.health();
        if (health === true) return json(200, { status: 'ok' });
        if (health === false) return json(503, { status: 'unhealthy' });
        const body = { status: 'ok', ...health };
        return json(body.status === 'ok' ? 200 : 503, body);
      },
    ],
    [
      '/ready',
      () => {
        const state = options.ready();
        const ready = typeof state === 'boolean' ? state : state.ready;
        if (ready) return json(200, { status: 'ready' });
        const reason = (typeof state === 'boolean' ? undefined : state.reason) ?? 'node is starting or shutting down';
        return json(503, { status: 'not ready', reason });
      },
    ],
    [
      '/metrics',
      async () => ({ status: 200, contentType: options.metrics.contentType, body: await options.metrics.text() }),
    ],
  ]);
}

/** Starts the admin HTTP server; rejects if the port cannot be bound. */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const routes = builtinRoutes(options);
  for (const [path, route] of Object.entries(options.routes ?? {})) {
    if (routes.has(path)) throw new Error(`admin route '${path}' is built in and cannot be replaced`);
    if (!path.startsWith('/')) throw new Error(`admin route '${path}' must start with '/'`);
    routes.set(path, route);
  }
  const { logger } = options;

  const server = http.createServer((req, res) => {
    // A request body is never used; drain it so keep-alive connections stay usable.
    req.resume();
    const path = pathOf(req.url ?? '/');
    const post = options.postRoutes?.[path];
    const route = routes.get(path) ?? (post ? () => json(405, { error: `method GET not allowed, use POST`, path }) : undefined);
    const answer = (response: AdminResponse, headers: Record<string, string> = {}): void => {
      res.writeHead(response.status, {
        'content-type': response.contentType,
        'content-length': Buffer.byteLength(response.body),
        ...headers,
      });
      res.end(response.body);
    };
    if (route === undefined) {
      answer(json(404, { error: 'not found', path, routes: [...routes.keys()] }));
      return;
    }
    if (post && req.method === 'POST') {
      const params = new URL(req.url ?? '/', 'http://admin').searchParams;
      Promise.resolve()
        .then(() => post(params))
        .then(answer, (err: unknown) => answer(json(errorStatus(err), { error: err instanceof Error ? err.message : String(err), path })));
      return;
    }
    if (req.method !== 'GET') {
      answer(json(405, { error: `method ${req.method ?? '?'} not allowed, use GET`, path }), { allow: 'GET' });
      return;
    }
    Promise.resolve()
      .then(route)
      .then(answer, (err: unknown) => {
        logger.error({ err, path }, 'admin route failed');
        answer(json(500, { error: err instanceof Error ? err.message : String(err), path }));
      });
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(new Error(`admin port ${options.host}:${options.port}: ${err.message}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(options.port, options.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => logger.error({ err }, 'admin server error'));
  const port = (server.address() as AddressInfo).port;

  let closed: Promise<void> | undefined;
  return {
    port,
    close(): Promise<void> {
      closed ??= new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeIdleConnections();
      });
      return closed;
    },
  };
}

/** An operation's error as HTTP: the operator's mistake is 4xx, a retryable state 503. */
function errorStatus(err: unknown): number {
  const code = (err as { code?: unknown }).code;
  if (code === 'INVALID_ARGUMENT') return 400;
  if (code === 'NOT_FOUND') return 404;
  if (code === 'UNAVAILABLE' || code === 'STALE_EPOCH') return 503;
  return 500;
}

/** The path of a request target, without query string; a target that is not a path yields ''. */
function pathOf(target: string): string {
  const end = target.search(/[?#]/);
  return end === -1 ? target : target.slice(0, end);
}
