import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../src/node/logger.js';
import { commandLabelsMax, createMetrics, type MetricsRegistry } from '../src/server/admin/metrics.js';
import { startAdminServer, type AdminServer, type ReadyState } from '../src/server/admin/server.js';

const logger = createLogger('silent');

/** Every sample line of a Prometheus text exposition, as name{labels} -> value. */
function samples(text: string): Map<string, number> {
  const result = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (\S+)$/.exec(line);
    assert.ok(match, `malformed exposition line: ${line}`);
    result.set(match[1] as string, Number(match[2]));
  }
  return result;
}

describe('admin server', () => {
  let server: AdminServer;
  let base: string;
  let metrics: MetricsRegistry;
  let healthy: boolean | Record<string, unknown> = true;
  let ready: boolean | ReadyState = true;
  let storage = { keys: 0, bytes: 0 };

  before(async () => {
    metrics = createMetrics({ storageStats: () => storage });
    server = await startAdminServer({
      host: '127.0.0.1',
      port: 0,
      metrics,
      health: () => healthy,
      ready: () => ready,
      logger,
      routes: {
        '/cluster': () => ({ status: 200, contentType: 'application/json', body: '{"members":[]}' }),
        '/broken': () => {
          throw new Error('boom');
        },
      },
    });
    base = `http://127.0.0.1:${server.port}`;
  });
  after(() => server.close());

  it('binds a free port when asked for port 0', () => {
    assert.ok(server.port > 0);
  });

  it('GET /health is 200 {"status":"ok"}, 503 when unhealthy', async () => {
    healthy = true;
    let res = await fetch(`${base}/health`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await res.json(), { status: 'ok' });

    healthy = { storage: 'open' };
    res = await fetch(`${base}/health?verbose=1`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ok', storage: 'open' });

    healthy = { status: 'degraded', storage: 'read-only' };
    res = await fetch(`${base}/health`);
    assert.equal(res.status, 503);
    assert.deepEqual(await res.json(), { status: 'degraded', storage: 'read-only' });

    healthy = false;
    res = await fetch(`${base}/health`);
    assert.equal(res.status, 503);
    assert.deepEqual(await res.json(), { status: 'unhealthy' });
    healthy = true;
  });

  it('GET /ready is 200 when ready, else 503 with a reason', async () => {
    ready = true;
    let res = await fetch(`${base}/ready`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ready' });

    ready = false;
    res = await fetch(`${base}/ready`);
    assert.equal(res.status, 503);
    const body = (await res.json()) as { status: string; reason: string };
    assert.equal(body.status, 'not ready');
    assert.ok(body.reason.length > 0);

    ready = { ready: false, reason: 'joining: streaming 3 ranges' };
    res = await fetch(`${base}/ready`);
    assert.equal(res.status, 503);
    assert.deepEqual(await res.json(), { status: 'not ready', reason: 'joining: streaming 3 ranges' });
    ready = true;
  });

  it('GET /metrics serves the registry text with its content type and the observed counts', async () => {
    for (let i = 0; i < 3; i++) metrics.observe('resp', 'GET', 0.0001);
    metrics.observe('resp', 'GET', 0.003);
    metrics.observe('resp', 'SET', 0.002, 'OVERLOADED');
    metrics.observe('resp', 'SET', 0.0004);
    metrics.observe('grpc', 'RawGet', 10, 'UNAVAILABLE');
    metrics.connections('resp', 1);
    metrics.connections('resp', 1);
    metrics.connections('resp', -1);
    metrics.disconnected('resp', 'outputBufferBytesMax');
    metrics.disconnected('resp', 'outputBufferBytesMax');
    storage = { keys: 42, bytes: 4096 };

    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), metrics.contentType);
    assert.match(metrics.contentType, /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const s = samples(text);
    const get = 'protocol="resp",command="GET"';
    assert.equal(s.get(`ragkv_requests_total{${get}}`), 4);
    assert.equal(s.get(`ragkv_request_duration_seconds_bucket{${get},le="0.00005"}`), 0);
    assert.equal(s.get(`ragkv_request_duration_seconds_bucket{${get},le="0.0001"}`), 3, 'bounds are inclusive');
    assert.equal(s.get(`ragkv_request_duration_seconds_bucket{${get},le="0.0025"}`), 3);
    assert.equal(s.get(`ragkv_request_duration_seconds_bucket{${get},le="0.005"}`), 4);
    assert.equal(s.get(`ragkv_request_duration_seconds_bucket{${get},le="5"}`), 4);
    assert.equal(s.get(`ragkv_request_duration_seconds_bucket{${get},le="+Inf"}`), 4);
    assert.equal(s.get(`ragkv_request_duration_seconds_count{${get}}`), 4);
    assert.ok(Math.abs((s.get(`ragkv_request_duration_seconds_sum{${get}}`) as number) - 0.0033) < 1e-12);
    assert.equal(s.get('ragkv_requests_total{protocol="resp",command="SET"}'), 2);
    assert.equal(s.get('ragkv_errors_total{protocol="resp",command="SET",code="OVERLOADED"}'), 1);
    assert.equal(s.get(`ragkv_errors_total{${get},code="OVERLOADED"}`), undefined);
    const rawGet = 'protocol="grpc",command="RawGet"';
    assert.equal(s.get(`ragkv_request_duration_seconds_bucket{${rawGet},le="5"}`), 0);
    assert.equal(s.get(`ragkv_request_duration_seconds_bucket{${rawGet},le="+Inf"}`), 1);
    assert.equal(s.get(`ragkv_request_duration_seconds_sum{${rawGet}}`), 10);
    assert.equal(s.get(`ragkv_errors_total{${rawGet},code="UNAVAILABLE"}`), 1);
    assert.equal(s.get('ragkv_connections{protocol="resp"}'), 1);
    assert.equal(s.get('ragkv_connections{protocol="grpc"}'), 0);
    assert.equal(s.get('ragkv_disconnects_total{protocol="resp",reason="outputBufferBytesMax"}'), 2);
    assert.equal(s.get('ragkv_keys'), 42);
    assert.equal(s.get('ragkv_stored_bytes'), 4096);
    assert.ok(s.has('process_cpu_user_seconds_total'), 'default process metrics are registered');
    assert.match(text, /^# TYPE ragkv_request_duration_seconds histogram$/m);
    assert.match(text, /^# TYPE ragkv_requests_total counter$/m);

    // Storage gauges are read at scrape time.
    storage = { keys: 43, bytes: 5000 };
    const again = samples(await (await fetch(`${base}/metrics`)).text());
    assert.equal(again.get('ragkv_keys'), 43);
    assert.equal(again.get('ragkv_stored_bytes'), 5000);
  });

  it('unknown path is 404 JSON, non-GET is 405 with Allow', async () => {
    let res = await fetch(`${base}/nope`);
    assert.equal(res.status, 404);
    const body = (await res.json()) as { error: string; routes: string[] };
    assert.equal(body.error, 'not found');
    assert.ok(body.routes.includes('/metrics'));

    res = await fetch(`${base}/health`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'GET');
    assert.match(((await res.json()) as { error: string }).error, /method POST not allowed/);

    res = await fetch(`${base}/metrics`, { method: 'DELETE' });
    assert.equal(res.status, 405);
  });

  it('serves extra routes from the table; a failing route is 500 JSON', async () => {
    let res = await fetch(`${base}/cluster`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { members: [] });
    res = await fetch(`${base}/broken`);
    assert.equal(res.status, 500);
    assert.deepEqual(await res.json(), { error: 'boom', path: '/broken' });
  });

  it('refuses to replace a built-in route', async () => {
    await assert.rejects(
      startAdminServer({ host: '127.0.0.1', port: 0, metrics, health: () => true, ready: () => true, logger, routes: { '/health': () => ({ status: 200, contentType: 'text/plain', body: '' }) } }),
      /admin route '\/health' is built in/,
    );
  });
});

describe('admin server lifecycle', () => {
  const options = () => ({ host: '127.0.0.1', metrics: createMetrics({ storageStats: () => ({ keys: 0, bytes: 0 }) }), health: () => true, ready: () => true, logger });

  it('a taken port is an error naming host and port', async () => {
    const first = await startAdminServer({ ...options(), port: 0 });
    try {
      await assert.rejects(startAdminServer({ ...options(), port: first.port }), new RegExp(`^Error: admin port 127\\.0\\.0\\.1:${first.port}: .*EADDRINUSE`));
    } finally {
      await first.close();
    }
  });

  it('close() stops accepting connections, also with an idle keep-alive connection open', async () => {
    const server = await startAdminServer({ ...options(), port: 0 });
    const res = await fetch(`http://127.0.0.1:${server.port}/health`);
    assert.equal(res.status, 200);
    await res.text();
    await server.close();
    await server.close(); // idempotent
    await assert.rejects(
      new Promise<void>((resolve, reject) => {
        const socket = net.connect(server.port, '127.0.0.1', () => {
          socket.destroy();
          resolve();
        });
        socket.on('error', reject);
      }),
      /ECONNREFUSED/,
    );
  });
});

describe('metrics registry', () => {
  const stats = () => ({ keys: 0, bytes: 0 });

  it('registries are independent', async () => {
    const a = createMetrics({ storageStats: stats });
    const b = createMetrics({ storageStats: stats });
    a.observe('resp', 'PING', 0.00001);
    assert.equal(samples(await a.text()).get('ragkv_requests_total{protocol="resp",command="PING"}'), 1);
    assert.equal(samples(await b.text()).get('ragkv_requests_total{protocol="resp",command="PING"}'), undefined);
  });

  it('bounds the number of command labels; the rest count under "other"', async () => {
    const m = createMetrics({ storageStats: stats });
    const extra = 10;
    for (let i = 0; i < commandLabelsMax + extra; i++) m.observe('resp', `CMD${i}`, 0.001);
    m.observe('resp', 'CMD0', 0.001);
    m.observe('resp', `CMD${commandLabelsMax + 1}`, 0.001);
    const s = samples(await m.text());
    const requestSeries = [...s.keys()].filter((k) => k.startsWith('ragkv_requests_total{protocol="resp"'));
    assert.equal(requestSeries.length, commandLabelsMax + 1);
    assert.equal(s.get('ragkv_requests_total{protocol="resp",command="CMD0"}'), 2);
    assert.equal(s.get('ragkv_requests_total{protocol="resp",command="other"}'), extra + 1);
    assert.equal(s.get(`ragkv_requests_total{protocol="resp",command="CMD${commandLabelsMax}"}`), undefined);
  });

  it('escapes label values from clients', async () => {
    const m = createMetrics({ storageStats: stats });
    m.observe('resp', 'A"B\\C\nD', 0.001);
    const text = await m.text();
    assert.ok(text.includes('ragkv_requests_total{protocol="resp",command="A\\"B\\\\C\\nD"} 1'), text);
  });

  it('rejects a negative or NaN duration (a caller bug)', () => {
    const m = createMetrics({ storageStats: stats });
    assert.throws(() => m.observe('resp', 'GET', Number.NaN), RangeError);
    assert.throws(() => m.observe('resp', 'GET', -1), RangeError);
  });
});
