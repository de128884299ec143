/** The Redis-protocol (RESP2 and RESP3) server of ragkv. */
export { startRespServer, type RespServer, type RespServerOptions } from './server.js';
export type { RespLogger } from './context.js';
export type { RespTopology } from './cluster.js';
