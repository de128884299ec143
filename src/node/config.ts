/**
 * Node configuration from four sources, highest precedence first: command-line flags,
 * RAGKV_* environment variables, a JSON config file, built-in defaults. The table
 * `configOptions` is the single description of every option: parsing, `--help` and the
 * README table are all derived from it, so an option cannot exist in one and not the other.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { defaultLimits, validateLimits, type Limits } from '../common/limits.js';
import type { Level } from '../coordinator/api.js';

export type Durability = 'fsync' | 'commit' | 'none';

/** Cluster membership and replication settings; `nodeId` empty means a single node. */
export interface ClusterConfig {
  nodeId: string;
  peerPort: number;
  /** `host:port` peer addresses, or `dns:<name>:<port>` for a headless service. */
  seeds: string[];
  clusterName: string;
  /** File holding the cluster secret; '' for none (then only loopback peers are accepted). */
  clusterSecretFile: string;
  advertiseHost: string;
  zone: string;
  replicas: number;
  readConsistency: Level;
  writeConsistency: Level;
  /** Members that must see each other before the first placement table is made. */
  expectMembers: number;
  /** Bandwidth of the streams that move slots to this member, bytes/s. */
  streamBytesPerSec: number;
}

export interface NodeConfig {
  dataDir: string;
  host: string;
  respPort: number;
  grpcPort: number;
  adminPort: number;
  durability: Durability;
  logLevel: string;
  limits: Limits;
  cluster: ClusterConfig;
}

/** How an option's text is parsed and checked. */
export type OptionKind = 'path' | 'secretFile' | 'host' | 'port' | 'durability' | 'logLevel' | 'count' | 'configFile' | 'text' | 'level';

/** Consistency levels accepted for `--read-consistency` / `--write-consistency`. */
export const consistencyLevels: readonly Level[] = ['ONE', 'QUORUM', 'ALL'];

export interface ConfigOption {
  /** Flag name without dashes, e.g. `resp-port`. */
  flag: string;
  /** Environment variable, e.g. `RAGKV_RESP_PORT`. */
  env: string;
  /** Config-file key (camelCase, as in NodeConfig / Limits); null for `--config` itself. */
  key: string | null;
  /** True for a member of `Limits` (may sit under `"limits"` in the file or at top level). */
  limit: boolean;
  kind: OptionKind;
  /** Placeholder shown in help, e.g. `<port>`. */
  valueName: string;
  /** Default value (`undefined` for `--config`: no file is read unless one is named). */
  defaultValue: string | number | undefined;
  description: string;
}

export const durabilityModes: readonly Durability[] = ['fsync', 'commit', 'none'];
export const logLevels: readonly string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** One line per limit; the keys must be exactly those of `Limits` (checked below at load). */
const limitDescriptions: Record<keyof Limits, string> = {
  keyBytesMax: 'largest key, in bytes',
  valueBytesMax: 'largest value carried by one write (SET value, APPEND bytes, HSET field value)',
  fieldBytesMax: 'largest hash field name, in bytes',
  respArrayLengthMax: 'largest number of elements in one RESP command array',
  respBulkBytesMax: 'largest RESP bulk string accepted from a client',
  respInlineBytesMax: 'largest inline (non-array) RESP command line',
  queryBufferBytesMax: 'bytes a client may have sent that are not yet parsed into commands',
  outputBufferBytesMax: 'unread reply bytes of a client before it is disconnected',
  outputBuffersTotalBytesMax: 'unread reply bytes of all RESP clients together; past it the client holding the most is disconnected',
  pipelineInFlightMax: 'commands of one connection executing at once',
  connectionsMax: 'concurrent RESP client connections',
  closeLingerMsMax:
    'milliseconds a RESP connection the server closes (QUIT, protocol error, over connectionsMax) may take to deliver its last reply before it is destroyed',
  batchKeysMax: 'keys in one multi-key command or batch call',
  scanLimitMax: 'entries one SCAN / RawScan call may return',
  writeQueueMax: 'writes waiting for a storage commit before writes are refused as OVERLOADED',
  grpcMessageBytesMax: 'largest gRPC message, both directions',
  namespacesMax: 'namespaces (column families, SELECT databases) per node',
  namespaceBytesMax: 'longest namespace name, in bytes',
  peerFrameBytesMax: 'largest internode frame, checked before allocating',
  peerSendQueueBytesMax: 'bytes queued for one peer before sends are refused as OVERLOADED',
  peerRequestsInFlightMax: 'requests awaiting a reply on one peer connection',
  hintsMax: 'hints (writes kept for an unreachable replica) stored at most',
  hintBytesMax: 'bytes of hints stored at most',
  maxClockOffsetMs: 'largest clock offset between members, in ms: a member further from most of its peers goes out of service (CLOCK_SKEW), and replicas refuse versions more than twice this ahead of their clock',
  sessionKeysMax: 'keys on other members whose session state (read-your-writes, monotonic reads) one connection keeps',
  sessionBytesTotalMax: 'bytes of session state all RESP connections of a member keep together; past it the least recently used keys of any connection are dropped',
  sessionTokenBytesMax: 'largest gRPC session token, in bytes (older keys are dropped to fit)',
  diskFreeBytesMin: 'free bytes kept on the data directory\'s filesystem: under this, writes are refused as DISK_FULL (reads go on)',
};

/** `keyBytesMax` -> `key-bytes-max`. */
function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** `key-bytes-max` -> `RAGKV_KEY_BYTES_MAX`. */
function envName(flag: string): string {
  return `RAGKV_${flag.toUpperCase().replace(/-/g, '_')}`;
}

function option(
  flag: string,
  key: string | null,
  kind: OptionKind,
  valueName: string,
  defaultValue: string | number | undefined,
  description: string,
  limit = false,
): ConfigOption {
  return { flag, env: envName(flag), key, limit, kind, valueName, defaultValue, description };
}

/** Every option of `ragkv start`, in help order. */
export const configOptions: readonly ConfigOption[] = Object.freeze([
  option('config', null, 'configFile', '<file>', undefined, 'JSON config file (keys as in the "config key" column)'),
  option('data', 'dataDir', 'path', '<dir>', './data', 'data directory (LMDB files)'),
  option('host', 'host', 'host', '<addr>', '127.0.0.1', 'address the RESP, gRPC and admin ports bind to'),
  option('resp-port', 'respPort', 'port', '<port>', 6380, 'RESP (Redis protocol) port; 0 picks a free port'),
  option('grpc-port', 'grpcPort', 'port', '<port>', 50051, 'gRPC port; 0 picks a free port'),
  option('admin-port', 'adminPort', 'port', '<port>', 9180, 'HTTP admin port (/health, /ready, /metrics); 0 picks a free port'),
  option('durability', 'durability', 'durability', durabilityModes.join('|'), 'fsync',
    'when a write is acknowledged: fsync (flushed to disk), commit (committed, OS flushes later), none (fastest, may lose acknowledged writes on crash)'),
  option('log-level', 'logLevel', 'logLevel', '<level>', 'info', `log level: ${logLevels.join(', ')}`),
  option('node-id', 'nodeId', 'text', '<id>', '', 'this member\'s id in a cluster; unset runs a single node'),
  option('peer-port', 'peerPort', 'port', '<port>', 7380, 'internode (cluster) port; 0 picks a free port'),
  option('seeds', 'seeds', 'text', '<host:port,...>', '',
    'members to join through: peer addresses, or dns:<name>:<port> for a Kubernetes headless service'),
  option('cluster-name', 'clusterName', 'text', '<name>', 'ragkv', 'members of other clusters are refused at the handshake'),
  option('cluster-secret-file', 'clusterSecretFile', 'secretFile', '<file>', '',
    'file holding the cluster secret (at least 16 bytes): members prove they know it when they connect; without one a member accepts and dials loopback peers only'),
  option('advertise-host', 'advertiseHost', 'text', '<addr>', '', 'address other members reach this one at (default: --host)'),
  option('zone', 'zone', 'text', '<zone>', '', 'failure zone; replicas of a key go to distinct zones'),
  option('replicas', 'replicas', 'count', '<n>', 3, 'replicas of each key (N)'),
  option('read-consistency', 'readConsistency', 'level', consistencyLevels.join('|'), 'ONE', 'default replicas a read waits for'),
  option('write-consistency', 'writeConsistency', 'level', consistencyLevels.join('|'), 'QUORUM', 'default replicas a write waits for'),
  option('expect-members', 'expectMembers', 'count', '<n>', 1,
    'members a new cluster waits to see before its first placement table (later members join one at a time, streaming their slots)'),
  option('stream-bytes-per-sec', 'streamBytesPerSec', 'count', '<n>', 64 * 1024 * 1024, 'bandwidth of the streams that move slots to this member (bytes/s, per source)'),
  ...(Object.keys(limitDescriptions) as (keyof Limits)[]).map((name) =>
    option(kebab(name), name, 'count', '<n>', defaultLimits[name], `limit: ${limitDescriptions[name]}`, true),
  ),
]);

/** A configuration mistake by the operator; the message says what and where. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const optionsByFlag = new Map(configOptions.map((o) => [o.flag, o]));
const optionsByKey = new Map(configOptions.filter((o) => o.key !== null).map((o) => [o.key as string, o]));

/** Where a raw value came from; used to name it in error messages and resolve paths. */
interface Source {
  /** How the value is named in an error, e.g. `'--resp-port'` or `'respPort' in config file 'x.json'`. */
  label: string;
  /** Directory relative paths are resolved against. */
  baseDir: string;
}

type Value = string | number;

/** Parses a value given as text (flag or environment variable). */
function parseText(opt: ConfigOption, text: string, source: Source): Value {
  const got = `got '${text}'`;
  switch (opt.kind) {
    case 'port': {
      const n = /^[0-9]{1,5}$/.test(text) ? Number(text) : NaN;
      if (!(n >= 0 && n <= 65535)) throw new ConfigError(`${source.label} must be an integer from 0 to 65535, ${got}`);
      return n;
    }
    case 'count': {
      const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
      if (!Number.isSafeInteger(n) || n <= 0) throw new ConfigError(`${source.label} must be a positive integer, ${got}`);
      return n;
    }
    default:
      return checkString(opt, text, source, got);
  }
}

/** Parses a value from the JSON config file, where numbers must be JSON numbers. */
function parseJson(opt: ConfigOption, value: unknown, source: Source): Value {
  const got = `got ${JSON.stringify(value) ?? String(value)}`;
  switch (opt.kind) {
    case 'port':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 65535) {
        throw new ConfigError(`${source.label} must be an integer from 0 to 65535, ${got}`);
      }
      return value;
    case 'count':
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
        throw new ConfigError(`${source.label} must be a positive integer, ${got}`);
      }
      return value;
    default:
      if (typeof value !== 'string') throw new ConfigError(`${source.label} must be a string, ${got}`);
      return checkString(opt, value, source, got);
  }
}

function checkString(opt: ConfigOption, text: string, source: Source, got: string): string {
  if (text === '') throw new ConfigError(`${source.label} must not be empty`);
  switch (opt.kind) {
    case 'durability':
      if (!(durabilityModes as readonly string[]).includes(text)) {
        throw new ConfigError(`${source.label} must be one of ${durabilityModes.join(', ')}, ${got}`);
      }
      return text;
    case 'logLevel':
      if (!logLevels.includes(text)) throw new ConfigError(`${source.label} must be one of ${logLevels.join(', ')}, ${got}`);
      return text;
    case 'level': {
      const upper = text.toUpperCase();
      if (!(consistencyLevels as readonly string[]).includes(upper)) {
        throw new ConfigError(`${source.label} must be one of ${consistencyLevels.join(', ')}, ${got}`);
      }
      return upper;
    }
    case 'path':
    case 'configFile':
      return path.resolve(source.baseDir, text);
    case 'secretFile': {
      // Read now, so a missing or short secret is a configuration error, not a failed start.
      const file = path.resolve(source.baseDir, text);
      readClusterSecret(file, source.label);
      return file;
    }
    default:
      return text;
  }
}

/** Splits argv into option -> raw text. Accepts `--flag value` and `--flag=value`; the last repeat wins. */
function parseArgv(argv: readonly string[]): Map<ConfigOption, string> {
  const values = new Map<ConfigOption, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument '${arg}' (see ragkv --help)`);
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const opt = optionsByFlag.get(name);
    if (opt === undefined) throw new ConfigError(`unknown option '--${name}' (see ragkv --help)`);
    let text: string;
    if (eq !== -1) {
      text = arg.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      // A following `--x` is another option, not this one's value; `--data=--odd` still works.
      if (next === undefined || next.startsWith('--')) throw new ConfigError(`option '--${name}' needs a value ${opt.valueName}`);
      text = next;
      i++;
    }
    values.set(opt, text);
  }
  return values;
}

/** Reads the config file into option -> JSON value, rejecting unknown keys and duplicates. */
function readConfigFile(file: string): Map<ConfigOption, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file '${file}': ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file '${file}' is not valid JSON: ${(err as Error).message}`);
  }
  if (!isPlainObject(json)) throw new ConfigError(`config file '${file}' must hold a JSON object`);

  const values = new Map<ConfigOption, unknown>();
  for (const [key, value] of Object.entries(json)) {
    if (key === 'limits') {
      if (!isPlainObject(value)) throw new ConfigError(`'limits' in config file '${file}' must be an object`);
      for (const [name, limit] of Object.entries(value)) {
        const opt = optionsByKey.get(name);
        if (opt === undefined || !opt.limit) throw new ConfigError(`unknown limit 'limits.${name}' in config file '${file}'`);
        if (values.has(opt)) throw new ConfigError(`limit '${name}' is set twice in config file '${file}' (at top level and under 'limits')`);
        values.set(opt, limit);
      }
      continue;
    }
    const opt = optionsByKey.get(key);
    if (opt === undefined) throw new ConfigError(`unknown key '${key}' in config file '${file}'`);
    if (values.has(opt)) throw new ConfigError(`limit '${key}' is set twice in config file '${file}' (at top level and under 'limits')`);
    values.set(opt, value);
  }
  return values;
}

/** The cluster part of the config; `nodeId` empty means a single node. */
function clusterConfig(resolved: Map<string, Value>): ClusterConfig {
  const secretFile = resolved.get('clusterSecretFile') as string;
  const seedsText = resolved.get('seeds') as string;
  const seeds = seedsText
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0);
  for (const seed of seeds) {
    if (!/^(dns:[^:]+:\d{1,5}|[^:,\s]+:\d{1,5})$/.test(seed)) {
      throw new ConfigError(`seed '${seed}' must be host:port or dns:<name>:<port>`);
    }
  }
  return {
    nodeId: resolved.get('nodeId') as string,
    peerPort: resolved.get('peerPort') as number,
    seeds,
    clusterName: resolved.get('clusterName') as string,
    clusterSecretFile: secretFile,
    advertiseHost: resolved.get('advertiseHost') as string,
    zone: resolved.get('zone') as string,
    replicas: resolved.get('replicas') as number,
    readConsistency: resolved.get('readConsistency') as Level,
    writeConsistency: resolved.get('writeConsistency') as Level,
    expectMembers: resolved.get('expectMembers') as number,
    streamBytesPerSec: resolved.get('streamBytesPerSec') as number,
  };
}

/** Fewest bytes a cluster secret may have. */
export const clusterSecretBytesMin = 16;

/** The cluster secret from its file (trailing whitespace and newline removed); a ConfigError when unreadable or too short. */
export function readClusterSecret(file: string, label = '--cluster-secret-file'): Buffer {
  let text: Buffer;
  try {
    text = readFileSync(file);
  } catch (err) {
    throw new ConfigError(`${label} names '${file}', which cannot be read: ${(err as Error).message}`);
  }
  let end = text.length;
  while (end > 0 && (text[end - 1] === 0x0a || text[end - 1] === 0x0d || text[end - 1] === 0x20 || text[end - 1] === 0x09)) end--;
  if (end < clusterSecretBytesMin) {
    throw new ConfigError(`${label} names '${file}', which holds ${end} bytes; a cluster secret must have at least ${clusterSecretBytesMin}`);
  }
  return Buffer.from(text.subarray(0, end));
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Builds the node config from `ragkv start` arguments (after the subcommand) and the
 * environment. Precedence: flag > environment > config file > default. Relative paths
 * from flags and variables resolve against the working directory, from the file against
 * the file's directory. Throws ConfigError with a message naming the option and source.
 */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv, cwd: string = process.cwd()): NodeConfig {
  const flags = parseArgv(argv);
  const fromFlag = (opt: ConfigOption): Value | undefined => {
    const text = flags.get(opt);
    return text === undefined ? undefined : parseText(opt, text, { label: `'--${opt.flag}'`, baseDir: cwd });
  };
  // An empty variable counts as unset, as shells make `VAR=` easy to leave behind.
  const fromEnv = (opt: ConfigOption): Value | undefined => {
    const text = env[opt.env];
    return text === undefined || text === '' ? undefined : parseText(opt, text, { label: `'${opt.env}'`, baseDir: cwd });
  };

  const configOption = optionsByFlag.get('config') as ConfigOption;
  const configFile = (fromFlag(configOption) ?? fromEnv(configOption)) as string | undefined;
  const fileValues = configFile === undefined ? new Map<ConfigOption, unknown>() : readConfigFile(configFile);
  const fileSource = (opt: ConfigOption): Source => ({
    label: `'${opt.key}' in config file '${configFile}'`,
    baseDir: path.dirname(configFile ?? cwd),
  });

  const resolved = new Map<string, Value>();
  for (const opt of configOptions) {
    if (opt.key === null) continue;
    let value = fromFlag(opt) ?? fromEnv(opt);
    if (value === undefined && fileValues.has(opt)) value = parseJson(opt, fileValues.get(opt), fileSource(opt));
    if (value === undefined) {
      // Defaults are text only for paths, which resolve against the working directory.
      value = opt.kind === 'path' && opt.defaultValue !== '' ? path.resolve(cwd, opt.defaultValue as string) : (opt.defaultValue as Value);
    }
    resolved.set(opt.key, value);
  }

  const limits = {} as Record<keyof Limits, number>;
  for (const name of Object.keys(defaultLimits) as (keyof Limits)[]) {
    const value = resolved.get(name);
    // The option table and the Limits interface must list the same limits.
    if (typeof value !== 'number') throw new Error(`limit '${name}' has no entry in configOptions`);
    limits[name] = value;
  }
  try {
    validateLimits(limits);
  } catch (err) {
    throw new ConfigError(`invalid limits: ${(err as Error).message}`);
  }

  return {
    dataDir: resolved.get('dataDir') as string,
    host: resolved.get('host') as string,
    respPort: resolved.get('respPort') as number,
    grpcPort: resolved.get('grpcPort') as number,
    adminPort: resolved.get('adminPort') as number,
    durability: resolved.get('durability') as Durability,
    logLevel: resolved.get('logLevel') as string,
    cluster: clusterConfig(resolved),
    limits,
  };
}

/** The options section of `ragkv --help`: flag, meaning, default and environment variable. */
export function formatOptionsHelp(): string {
  const lines: string[] = [];
  for (const opt of configOptions) {
    const shown = opt.defaultValue === undefined ? 'none' : String(opt.defaultValue);
    lines.push(`  --${opt.flag} ${opt.valueName}`);
    lines.push(`      ${opt.description}`);
    lines.push(`      default: ${shown}   env: ${opt.env}${opt.key === null ? '' : `   config key: ${opt.key}`}`);
  }
  return lines.join('\n');
}

/** The options table of README.md ("Configuration"): one row per option, from the same table. */
export function formatOptionsMarkdown(): string {
  const rows = ['| flag | environment | config key | default | meaning |', '|---|---|---|---|---|'];
  for (const opt of configOptions) {
    const shown = opt.defaultValue === undefined || opt.defaultValue === '' ? '—' : `\`${String(opt.defaultValue)}\``;
    rows.push(`| \`--${opt.flag} ${opt.valueName}\` | \`${opt.env}\` | ${opt.key === null ? '—' : `\`${opt.key}\``} | ${shown} | ${opt.description} |`);
  }
  return rows.join('\n');
}
