import type { TargetSpec } from '../targets/spec.js';

export type PeerKind = 'ragkv' | 'ragkv-cluster' | 'redis' | 'redis-replicated' | 'redis-always' | 'etcd';

export interface PeerOptions {
  /** Data directories go below it (each peer's own sub-directories are emptied first). */
  workDir: string;
  /** Progress lines (installs, start, ready, stop). */
  log: (line: string) => void;
  /** Extra `ragkv start` flags, e.g. `['--durability', 'commit']`. */
  ragkvArgs?: string[];
  /** Deadline for the servers to be ready; default 60 s. */
  startTimeoutMs?: number;
}

export interface PeerHandle {
  /** The target to benchmark (for ragkv: its RESP endpoint). */
  spec: TargetSpec;
  /** ragkv only: both of its interfaces. */
  specs?: { resp: TargetSpec; grpc: TargetSpec };
  /** What runs: version, topology, durability. */
  describe: string;
  /** Every server process (for CPU measurement). */
  serverPids: number[];
  /** Stops every server (SIGTERM, SIGKILL after a deadline) and waits for the exits. */
  stop(): Promise<void>;
}
