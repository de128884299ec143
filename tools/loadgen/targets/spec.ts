/**
 * What a load generator needs to know to reach a store: its kind, its endpoints and a name
 * for reports. Peers (`../peers`) produce these; `createTargetFactory` consumes them.
 */
export type TargetKind = 'ragkv-resp' | 'ragkv-grpc' | 'redis' | 'etcd';

export interface TargetSpec {
  kind: TargetKind;
  /**
   * `host:port` each. ragkv: one node's RESP or gRPC endpoint. redis: one endpoint, or for a
   * replicated setup the primary first, then its replicas. etcd: every member's client endpoint.
   */
  endpoints: string[];
  /** Name in tables and reports, e.g. `ragkv-resp`, `redis`, `redis-replicated`, `etcd`. */
  name: string;
}

/** Splits `host:port` (IPv6 as `[::1]:port`); throws a clear error on anything else. */
export function parseEndpoint(endpoint: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(endpoint);
  const port = match ? Number(match[3]) : NaN;
  if (!match || !(port > 0 && port < 65536)) {
    throw new Error(`endpoint '${endpoint}' is not host:port`);
  }
  return { host: match[1] ?? match[2]!, port };
}
