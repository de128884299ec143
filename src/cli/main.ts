/**
 * The `ragkv` command line: `start` runs a node until SIGINT/SIGTERM, `help` lists every
 * option, `--version` prints the version. Exit codes: 0 success, 1 runtime failure,
 * 2 usage or configuration error.
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, formatOptionsHelp, loadConfig } from '../node/config.js';
import { createLogger, type Logger } from '../node/logger.js';
import type { NodeConfig, RunningNode } from '../node/node.js';

/** The repository (package) root: the nearest directory above this module with package.json. */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('package.json of ragkv not found above the CLI module');
    dir = parent;
  }
  return dir;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/** The text of `ragkv --help`. */
export function helpText(): string {
  return `ragkv ${version()}: a read-optimized, Dynamo-style key-value store for RAG

Usage:
  ragkv start [options]   run a node until SIGINT or SIGTERM; with --node-id, --peer-port
                          and --seeds it is one member of a cluster
  ragkv local-cluster     run a 3-member cluster on loopback, data under ./data/n<i>
                          (what 'npm start' runs); 'local-cluster add' and
                          'local-cluster remove <id>' grow and shrink it (--help)
  ragkv cluster status|leave|remove <id> [--admin host:port]
                          operate a running cluster (ragkv cluster --help)
  ragkv bench [options]   load-test ragkv, Redis and etcd side by side (ragkv bench --help)
  ragkv help              show this help (also --help, -h, ragkv start --help)
  ragkv --version         print the version

Options of 'start'. Each is also an environment variable and a config-file key;
a flag beats the environment, which beats the config file, which beats the default.
Flags take '--name value' or '--name=value'. Empty environment variables count as unset.

${formatOptionsHelp()}

The config file is a JSON object of config keys, e.g.
  { "dataDir": "/var/lib/ragkv", "respPort": 6380, "limits": { "keyBytesMax": 512 } }
Limits may also be given at top level. Relative paths in the file are relative to the file.

Logs are JSON lines on stdout; the start-up banner is on stderr.
`;
}

/** Runs the CLI with arguments after the executable; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(helpText());
      return 0;
    case '--version':
    case 'version':
      process.stdout.write(`ragkv ${version()}\n`);
      return 0;
    case 'start':
      return start(rest);
    case 'bench':
      return benchMain(rest);
    case 'local-cluster':
      return (await import('./local-cluster.js')).localClusterMain(rest);
    case 'cluster':
      return (await import('./cluster.js')).clusterMain(rest);
    case undefined:
      process.stderr.write(`ragkv: missing command\n\n${helpText()}`);
      return 2;
    default:
      if (command.startsWith('-')) {
        process.stderr.write(`ragkv: unknown option '${command}' before a command; options follow it, e.g. 'ragkv start --data ./data' (see ragkv --help)\n`);
      } else {
        process.stderr.write(`ragkv: unknown command '${command}' (see ragkv --help)\n`);
      }
      return 2;
  }
}

async function start(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(helpText());
    return 0;
  }
  let config: NodeConfig;
  try {
    config = loadConfig(args, process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`ragkv: ${err.message}\n`);
    return 2;
  }
  const logger = createLogger(config.logLevel);
  // Signals are handled from before the node starts: a stop that arrives while it is starting
  // (a supervisor such as local-cluster, systemd or Kubernetes stopping it) closes it cleanly
  // once it has started, instead of the default action killing it half-way.
  const stop = stopSignals(logger);

  let node: RunningNode;
  try {
    // Loaded here, not at the top: help, version and config errors must not need storage's
    // native module or the servers to load.
    const { startNode } = await import('../node/node.js');
    node = await startNode(config, logger);
  } catch (err) {
    stop.dispose();
    logger.fatal({ err }, 'start failed');
    process.stderr.write(`ragkv: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }

  // startNode has logged `listening` with the bound ports: the parseable twin of this banner
  // (with port 0 it is how scripts and tests learn the ports).
  process.stderr.write(banner(config, node));
  if (config.durability !== 'fsync') {
    logger.warn({ durability: config.durability }, 'durability is not fsync: acknowledged writes may be lost if the machine crashes');
  }
  const signal = await Promise.race([stop.requested, node.left.then(() => 'left' as const)]);
  logger.info({ signal }, signal === 'left' ? 'left the cluster: stopping' : 'shutting down (send the signal again to exit at once)');
  let code = 0;
  try {
    await node.close();
  } catch (err) {
    logger.error({ err }, 'close failed');
    code = 1;
  }
  stop.dispose();
  return code;
}

/**
 * SIGINT/SIGTERM handling for `start`: `requested` resolves with the first signal; a second
 * one exits at once, without a clean close. `dispose` removes the handlers.
 */
function stopSignals(logger: Logger): { requested: Promise<NodeJS.Signals>; dispose(): void } {
  let first: NodeJS.Signals | null = null;
  let resolveRequested: (signal: NodeJS.Signals) => void = () => {};
  const requested = new Promise<NodeJS.Signals>((resolve) => (resolveRequested = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    if (first !== null) {
      logger.warn({ signal }, 'second signal: exiting without a clean close');
      process.exit(128 + (os.constants.signals[signal] ?? 0));
    }
    first = signal;
    resolveRequested(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Started by a supervisor over an IPC channel (local-cluster, test harnesses): when the
  // supervisor is gone, even killed, the channel closes and this node stops cleanly, rather
  // than run on orphaned.
  const onDisconnect = (): void => {
    logger.warn({}, 'supervisor gone (IPC channel closed): stopping');
    onSignal('SIGTERM');
  };
  if (process.channel) {
    process.once('disconnect', onDisconnect);
    process.channel.unref();
  }
  return {
    requested,
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('disconnect', onDisconnect);
    },
  };
}

/** The human "how to connect" text, for stderr. */
function banner(config: NodeConfig, node: RunningNode): string {
  // A wildcard bind address is not something to connect to; loopback reaches it.
  const wildcard = config.host === '0.0.0.0' || config.host === '::';
  const host = wildcard ? '127.0.0.1' : config.host;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const protoAbsolute = path.join(packageRoot(), 'proto', 'ragkv', 'v1', 'rawkv.proto');
  const protoRelative = path.relative(process.cwd(), protoAbsolute);
  const proto = protoRelative.startsWith('..') ? protoAbsolute : protoRelative;
  const lines = [
    '',
    `ragkv ${version()} is running on ${config.host}  (data: ${config.dataDir}, durability: ${config.durability})`,
    `  RESP   redis-cli -h ${host} -p ${node.ports.resp}`,
    `  gRPC   ${urlHost}:${node.ports.grpc}   service ragkv.v1.RawKV, proto: ${proto}`,
    `  admin  curl http://${urlHost}:${node.ports.admin}/metrics   (also /health, /ready)`,
    'Press Ctrl-C to stop.',
    '',
  ];
  return lines.join('\n') + '\n';
}

/**
 * The load generator lives in tools/ (a checkout's dev tooling, not part of a production
 * install): loaded only when asked for, with a clear message where it is absent.
 */
async function benchMain(args: string[]): Promise<number> {
  const modulePath = '../../tools/bench/cli.js';
  let mod: { benchMain(args: string[]): Promise<number> };
  try {
    mod = (await import(modulePath)) as typeof mod;
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    process.stderr.write('ragkv bench: the load generator is not installed here; run `npm run bench` in a ragkv checkout\n');
    return 2;
  }
  return mod.benchMain(args);
}
