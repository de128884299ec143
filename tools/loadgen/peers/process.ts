/**
 * Server processes started by the benchmark: spawn with output kept (the last lines, for
 * error messages), wait for a log line (an event, not a sleep), stop with SIGTERM and then
 * SIGKILL after a deadline, and free loopback ports. Every child still running when this
 * process exits is killed, so an aborted benchmark leaves no servers behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';

const tailLines = 200;
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

export interface ServerProcess {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves with the exit code or signal once the process has exited. */
  readonly exited: Promise<number | string>;
  /** The last lines of stdout and stderr, oldest first. */
  tail(): string[];
  /** Resolves with the first output line matching `pattern` (lines already seen count). */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<string>;
  /** SIGTERM, SIGKILL after `graceMs`; resolves once the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

export function spawnServer(name: string, command: string, args: string[], env?: NodeJS.ProcessEnv): ServerProcess {
  installExitHook();
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  const lines: string[] = [];
  const waiters = new Set<(line: string) => void>();
  let exitedWith: number | string | null = null;
  let spawnError: Error | null = null;
  const exited = new Promise<number | string>((resolve) => {
    child.once('error', (e) => {
      spawnError = e;
      exitedWith = 'spawn-error';
      live.delete(child);
      resolve('spawn-error');
    });
    child.once('exit', (code, signal) => {
      exitedWith = code ?? signal ?? 'unknown';
      live.delete(child);
      resolve(exitedWith);
    });
  });
  if (child.pid !== undefined) live.add(child);
  const onLine = (line: string): void => {
    lines.push(line);
    if (lines.length > tailLines) lines.shift();
    for (const waiter of waiters) waiter(line);
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);

  const describeFailure = (what: string): Error =>
    new Error(
      `${name} (${command} ${args.join(' ')}) ${what}` +
        (spawnError ? `: ${(spawnError as Error).message}` : '') +
        (lines.length ? `\n--- last output ---\n${lines.slice(-30).join('\n')}` : ''),
    );

  return {
    name,
    pid: child.pid ?? -1,
    child,
    exited,
    tail: () => [...lines],
    waitForLine(pattern, timeoutMs) {
      const seen = lines.find((line) => pattern.test(line));
      if (seen !== undefined) return Promise.resolve(seen);
      if (exitedWith !== null) return Promise.reject(describeFailure(`exited (${exitedWith}) before logging ${pattern}`));
      return new Promise<string>((resolve, reject) => {
        const done = (): void => {
          clearTimeout(timer);
          waiters.delete(waiter);
        };
        const waiter = (line: string): void => {
          if (!pattern.test(line)) return;
          done();
          resolve(line);
        };
        const timer = setTimeout(() => {
          done();
          reject(describeFailure(`did not log ${pattern} within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(waiter);
        void exited.then((code) => {
          if (!waiters.has(waiter)) return;
          done();
          reject(describeFailure(`exited (${code}) before logging ${pattern}`));
        });
      });
    },
    async stop(graceMs = 10_000) {
      if (exitedWith !== null) return;
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const killed = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve();
        }, graceMs);
      });
      await Promise.race([exited, killed]);
      clearTimeout(timer);
      await exited;
    },
  };
}

/** Stops all, in parallel; rejects with the first failure after every stop has finished. */
export async function stopAll(servers: ServerProcess[], graceMs?: number): Promise<void> {
  const results = await Promise.allSettled(servers.map((s) => s.stop(graceMs)));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * `count` distinct free TCP ports on 127.0.0.1: all are bound at once (so they differ), then
 * released for the servers. Another process could take one in between; servers that fail
 * to bind exit with a clear error in their output.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

/** Runs a command to completion; resolves with its exit code and combined output. */
export function run(command: string, args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', (e) => resolve({ code: 127, output: output + e.message }));
    child.once('close', (code) => resolve({ code: code ?? 1, output }));
  });
}
