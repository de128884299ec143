/**
 * The composition root: the only module that knows every layer. It builds a node process
 * from its config: storage, coordinator, RESP/gRPC/admin servers, logger and metrics.
 */
import type { Limits } from '../common/limits.js';

export type Durability = 'fsync' | 'commit' | 'none';

export interface NodeConfig {
  dataDir: string;
  host: string;
  respPort: number;
  grpcPort: number;
  adminPort: number;
  durability: Durability;
  logLevel: string;
  limits: Limits;
}

export interface RunningNode {
  config: NodeConfig;
  /** Ports actually bound (differ from config when config asked for port 0). */
  ports: { resp: number; grpc: number; admin: number };
  /** Stops accepting, drains, closes storage. */
  close(): Promise<void>;
}

/** Starts a node: opens storage and binds the RESP, gRPC and admin ports. */
export async function startNode(config: NodeConfig): Promise<RunningNode> {
  throw new Error(`not wired yet: ${config.dataDir}`);
}
