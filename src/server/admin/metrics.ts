/**
 * Prometheus metrics of one node. Request counts and latencies are on the hot path of every
 * request, so they are kept in plain per-(protocol, command) records: an observe is one map
 * lookup, a few additions and a bucket search, with no allocation (prom-client's labelled
 * children cost ~0.5µs per observe, most of a small GET). They are rendered in Prometheus
 * text on scrape, after the families prom-client owns (connections, disconnects, storage
 * gauges and the default process metrics), which change rarely.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Protocol, RequestMetrics } from '../metrics.js';

/** Upper bounds of the request latency buckets, in seconds: 50µs to 5s. */
export const durationBucketsSeconds: readonly number[] = Object.freeze([
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
]);

/**
 * Distinct command labels kept per protocol; later ones are counted under `other`. Command
 * names can come from clients, and each label set is a time series kept forever.
 */
export const commandLabelsMax = 256;
/** Distinct error codes kept per command; later ones are counted under `other`. */
export const errorCodeLabelsMax = 32;
/** Distinct disconnect reasons kept per protocol; later ones are counted under `other`. */
export const disconnectReasonLabelsMax = 64;

export interface MetricsOptions {
  /** Read on every scrape for `ragkv_keys` and `ragkv_stored_bytes`. */
  storageStats: () => { keys: number; bytes: number; pruneQueue?: number; prunedRecords?: number; prunedBytes?: number; payloadsRefused?: number };
  /** Read on every scrape: this member's clock against its peers' (null on a single node). */
  clockStats?: () => { offsetMs: number; skewed: boolean; versionsRefused: number } | null;
  /** Read on every scrape: the session floors the RESP connections keep together. */
  sessionStats?: () => { keys: number; bytes: number };
  /** Read on every scrape: placement, streams, anti-entropy and hints of a cluster member (null on a single node). */
  clusterStats?: () => ClusterStats | null;
  /** Read on every scrape for the `ragkv_disk_*` families; none: they are not exported. */
  diskState?: () => { full: boolean; freeBytes: number; refusedWrites: number };
}

/** A cluster member's figures for /metrics. */
export interface ClusterStats {
  epoch: number;
  changeInFlight: boolean;
  movingSlotReplicas: number;
  streamedKeys: number;
  streamedBytes: number;
  streamSourcesPending: number;
  droppedKeys: number;
  staleRefusals: number;
  antiEntropyRounds: number;
  antiEntropyKeysRepaired: number;
  antiEntropySlotsDiffering: number;
  hintsPending: number;
  hintsDropped: number;
}

/** The node's metrics: what the protocol servers report into, and what /metrics serves. */
export interface MetricsRegistry extends RequestMetrics {
  /** The prom-client registry of this node (not the global one). */
  readonly registry: Registry;
  /** Content type of `text()`, from the registry. */
  readonly contentType: string;
  /** The whole exposition in Prometheus text format. */
  text(): Promise<string>;
}

/** Counts of one (protocol, command). */
interface CommandSeries {
  readonly command: string;
  requests: number;
  durationSumSeconds: number;
  /** Non-cumulative counts per bucket; the last slot is the +Inf overflow. */
  readonly bucketCounts: Float64Array;
  readonly errors: Map<string, number>;
}

const protocols: readonly Protocol[] = ['resp', 'grpc'];
const otherLabel = 'other';

/** Creates a metrics registry; each call owns a fresh prom-client Registry. */
export function createMetrics(options: MetricsOptions): MetricsRegistry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const connections = new Gauge({
    name: 'ragkv_connections',
    help: 'Open client connections.',
    labelNames: ['protocol'],
    registers: [registry],
  });
  const disconnects = new Counter({
    name: 'ragkv_disconnects_total',
    help: 'Clients disconnected by the server, by reason.',
    labelNames: ['protocol', 'reason'],
    registers: [registry],
  });
  new Gauge({
    name: 'ragkv_keys',
    help: 'Keys stored on this node.',
    registers: [registry],
    collect() {
      this.set(options.storageStats().keys);
    },
  });
  new Gauge({
    name: 'ragkv_stored_bytes',
    help: 'Bytes stored on this node.',
    registers: [registry],
    collect() {
      this.set(options.storageStats().bytes);
    },
  });

  new Gauge({
    name: 'ragkv_clock_offset_ms',
    help: "Median offset of the peers' clocks from this member's, ms (positive: peers are ahead).",
    registers: [registry],
    collect() {
      this.set(options.clockStats?.()?.offsetMs ?? 0);
    },
  });
  new Gauge({
    name: 'ragkv_clock_skewed',
    help: "1 while this member's clock is too far from its peers' ('maxClockOffsetMs'): it is out of service.",
    registers: [registry],
    collect() {
      this.set(options.clockStats?.()?.skewed ? 1 : 0);
    },
  });
  new Counter({
    name: 'ragkv_versions_refused_total',
    help: "Writes this replica refused because their versions were further ahead of its clock than twice 'maxClockOffsetMs'.",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(options.clockStats?.()?.versionsRefused ?? 0);
    },
  });
  const cluster: [keyof ClusterStats, string, 'gauge' | 'counter', string][] = [
    ['epoch', 'ragkv_placement_epoch', 'gauge', 'Epoch of the placement table this member holds.'],
    ['changeInFlight', 'ragkv_placement_change_in_flight', 'gauge', '1 while a membership change (join, leave, remove, restore) is in flight.'],
    ['movingSlotReplicas', 'ragkv_placement_moving_slot_replicas', 'gauge', 'Slot replicas the change in flight moves.'],
    ['streamedKeys', 'ragkv_stream_keys_total', 'counter', 'Records this member streamed in for slots it gained.'],
    ['streamedBytes', 'ragkv_stream_bytes_total', 'counter', 'Bytes of records this member streamed in.'],
    ['streamSourcesPending', 'ragkv_stream_sources_pending', 'gauge', 'Members this member still streams gained slots from.'],
    ['droppedKeys', 'ragkv_cleanup_dropped_keys_total', 'counter', 'Records dropped from slots this member no longer holds.'],
    ['staleRefusals', 'ragkv_stale_epoch_refusals_total', 'counter', 'Requests refused for carrying an older placement epoch.'],
    ['antiEntropyRounds', 'ragkv_anti_entropy_rounds_total', 'counter', 'Anti-entropy rounds run.'],
    ['antiEntropyKeysRepaired', 'ragkv_anti_entropy_keys_repaired_total', 'counter', 'Keys anti-entropy pulled or pushed.'],
    ['antiEntropySlotsDiffering', 'ragkv_anti_entropy_slots_differing_total', 'counter', 'Slot digests found differing from a peer.'],
    ['hintsPending', 'ragkv_hints_pending', 'gauge', 'Hints held here for other members.'],
    ['hintsDropped', 'ragkv_hints_dropped_total', 'counter', 'Hints not kept because the hint store was full (anti-entropy covers them).'],
  ];
  for (const [field, name, kind, help] of cluster) {
    const value = () => {
      const v = options.clusterStats?.()?.[field];
      return typeof v === 'boolean' ? (v ? 1 : 0) : (v ?? 0);
    };
    if (kind === 'gauge') {
      new Gauge({ name, help, registers: [registry], collect() { this.set(value()); } });
    } else {
      new Counter({ name, help, registers: [registry], collect() { this.reset(); this.inc(value()); } });
    }
  }
  new Gauge({
    name: 'ragkv_session_floor_keys',
    help: "Keys whose session floors this member's RESP connections keep, together.",
    registers: [registry],
    collect() {
      this.set(options.sessionStats?.().keys ?? 0);
    },
  });
  new Gauge({
    name: 'ragkv_session_floor_bytes',
    help: "About how much memory those floors take, in bytes (bounded by 'sessionBytesTotalMax').",
    registers: [registry],
    collect() {
      this.set(options.sessionStats?.().bytes ?? 0);
    },
  });
  new Gauge({
    name: 'ragkv_prune_queue',
    help: 'Records waiting for compaction to remove their deleted vector items.',
    registers: [registry],
    collect() {
      this.set(options.storageStats().pruneQueue ?? 0);
    },
  });
  new Counter({
    name: 'ragkv_pruned_records_total',
    help: 'Records compaction has pruned (checked for deleted vector items).',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(options.storageStats().prunedRecords ?? 0);
    },
  });
  new Counter({
    name: 'ragkv_pruned_bytes_total',
    help: 'Bytes of deleted vector items compaction has removed.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(options.storageStats().prunedBytes ?? 0);
    },
  });

  new Counter({
    name: 'ragkv_payloads_refused_total',
    help: 'Payloads of a stored append sent by a peer that were neither equal to it nor a compacted form of it (kept out; a sign of a bug).',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(options.storageStats().payloadsRefused ?? 0);
    },
  });

  const { diskState } = options;
  if (diskState) {
    new Gauge({
      name: 'ragkv_disk_full',
      help: '1 while writes are refused because the data directory\'s filesystem is full (reads are served), else 0.',
      registers: [registry],
      collect() {
        this.set(diskState().full ? 1 : 0);
      },
    });
    new Counter({
      name: 'ragkv_disk_full_writes_refused_total',
      help: 'Writes refused (DISK_FULL) or failed at commit for lack of disk space.',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(diskState().refusedWrites);
      },
    });
    new Gauge({
      name: 'ragkv_disk_free_bytes',
      help: 'Free bytes on the data directory\'s filesystem at the last check (every 100 ms).',
      registers: [registry],
      collect() {
        const free = diskState().freeBytes;
        if (Number.isFinite(free)) this.set(free);
      },
    });
  }

  const connectionChildren = new Map<Protocol, Gauge.Internal<string>>();
  const disconnectChildren = new Map<Protocol, Map<string, Counter.Internal>>();
  for (const protocol of protocols) {
    const child = connections.labels(protocol);
    child.set(0);
    connectionChildren.set(protocol, child);
    disconnectChildren.set(protocol, new Map());
  }

  const series = new Map<Protocol, Map<string, CommandSeries>>();
  for (const protocol of protocols) series.set(protocol, new Map());

  const seriesOf = (protocol: Protocol, command: string): CommandSeries => {
    const byCommand = series.get(protocol);
    if (byCommand === undefined) throw new TypeError(`unknown protocol '${String(protocol)}'`);
    let entry = byCommand.get(command);
    if (entry === undefined) {
      const label = byCommand.size < commandLabelsMax ? command : otherLabel;
      entry = byCommand.get(label) ?? newSeries(label);
      byCommand.set(label, entry);
      // Cache an over-limit name too (bounded by the same limit), so it stays a single lookup.
      if (label !== command && byCommand.size < 2 * commandLabelsMax) byCommand.set(command, entry);
    }
    return entry;
  };

  return {
    registry,
    contentType: registry.contentType,

    observe(protocol: Protocol, command: string, seconds: number, errorCode?: string): void {
      // NaN would poison the sum for the life of the process; a caller bug, not client input.
      if (!(seconds >= 0)) throw new RangeError(`request duration must be >= 0 seconds, got ${seconds}`);
      const entry = seriesOf(protocol, command);
      entry.requests += 1;
      entry.durationSumSeconds += seconds;
      let bucket = 0;
      while (bucket < durationBucketsSeconds.length && seconds > durationBucketsSeconds[bucket]) bucket++;
      entry.bucketCounts[bucket] += 1;
      if (errorCode !== undefined) {
        const code = entry.errors.has(errorCode) || entry.errors.size < errorCodeLabelsMax ? errorCode : otherLabel;
        entry.errors.set(code, (entry.errors.get(code) ?? 0) + 1);
      }
    },

    connections(protocol: Protocol, delta: number): void {
      const child = connectionChildren.get(protocol);
      if (child === undefined) throw new TypeError(`unknown protocol '${String(protocol)}'`);
      child.inc(delta);
    },

    disconnected(protocol: Protocol, reason: string): void {
      const byReason = disconnectChildren.get(protocol);
      if (byReason === undefined) throw new TypeError(`unknown protocol '${String(protocol)}'`);
      let child = byReason.get(reason);
      if (child === undefined) {
        const label = byReason.size < disconnectReasonLabelsMax ? reason : otherLabel;
        child = byReason.get(label) ?? disconnects.labels(protocol, label);
        byReason.set(label, child);
      }
      child.inc();
    },

    async text(): Promise<string> {
      return (await registry.metrics()) + '\n' + renderRequestFamilies(series);
    },
  };
}

function newSeries(command: string): CommandSeries {
  return {
    command,
    requests: 0,
    durationSumSeconds: 0,
    bucketCounts: new Float64Array(durationBucketsSeconds.length + 1),
    errors: new Map(),
  };
}

/** Unique series of each protocol (the cache may map several names to one `other` series). */
function uniqueSeries(byCommand: Map<string, CommandSeries>): CommandSeries[] {
  return [...new Set(byCommand.values())];
}

/** Renders the request families in Prometheus text format 0.0.4. */
function renderRequestFamilies(series: Map<Protocol, Map<string, CommandSeries>>): string {
  const requests = ['# HELP ragkv_requests_total Requests handled, failed ones included.', '# TYPE ragkv_requests_total counter'];
  const errors = ['# HELP ragkv_errors_total Requests that failed, by error code.', '# TYPE ragkv_errors_total counter'];
  const durations = [
    '# HELP ragkv_request_duration_seconds Time from a parsed request to its reply.',
    '# TYPE ragkv_request_duration_seconds histogram',
  ];
  for (const [protocol, byCommand] of series) {
    for (const entry of uniqueSeries(byCommand)) {
      const labels = `protocol="${escapeLabel(protocol)}",command="${escapeLabel(entry.command)}"`;
      requests.push(`ragkv_requests_total{${labels}} ${entry.requests}`);
      for (const [code, count] of entry.errors) {
        errors.push(`ragkv_errors_total{${labels},code="${escapeLabel(code)}"} ${count}`);
      }
      let cumulative = 0;
      durationBucketsSeconds.forEach((bound, i) => {
        cumulative += entry.bucketCounts[i];
        durations.push(`ragkv_request_duration_seconds_bucket{${labels},le="${bound}"} ${cumulative}`);
      });
      durations.push(`ragkv_request_duration_seconds_bucket{${labels},le="+Inf"} ${entry.requests}`);
      durations.push(`ragkv_request_duration_seconds_sum{${labels}} ${entry.durationSumSeconds}`);
      durations.push(`ragkv_request_duration_seconds_count{${labels}} ${entry.requests}`);
    }
  }
  return [requests, durations, errors].map((lines) => lines.join('\n')).join('\n\n') + '\n';
}

/** Escapes a label value as the text format requires: backslash, double quote, newline. */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
