/** The HTTP admin port (/health, /ready, /metrics) and the node's Prometheus metrics. */
export { startAdminServer } from './server.js';
export type { AdminServer, AdminServerOptions, AdminRoute, AdminResponse, ReadyState } from './server.js';
export { createMetrics, durationBucketsSeconds } from './metrics.js';
export type { MetricsRegistry, MetricsOptions } from './metrics.js';
