import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const binPath = fileURLToPath(new URL('../../../bin/ragkv.js', import.meta.url));

export interface NodeProcess {
  proc: ChildProcess;
  ports: { resp: number; grpc: number; admin: number };
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
  /** Every structured log line written so far, parsed, in order. */
  logs: { level?: string; msg?: string; [field: string]: unknown }[];
}

export interface StartOptions {
  /** Environment of the process (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

/**
 * Starts `ragkv start` as a real process on free ports and resolves once its structured
 * log says it is listening (no sleeps: the log line is the event).
 */
export async function startNodeProcess(
  dataDir: string,
  extraArgs: string[] = [],
  timeoutMs = 20_000,
  options: StartOptions = {},
): Promise<NodeProcess> {
  const proc = spawn(
    process.execPath,
    [binPath, 'start', '--data', dataDir, '--host', '127.0.0.1', '--resp-port', '0', '--grpc-port', '0', '--admin-port', '0', ...extraArgs],
    // The IPC channel: the node stops itself if this test process dies (no orphans).
    { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], ...(options.env ? { env: options.env } : {}) },
  );
  proc.channel?.unref();
  const exited = new Promise<number | string>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: proc.stdout! });
  const logs: NodeProcess['logs'] = [];
  lines.on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as NodeProcess['logs'][number]);
    } catch {
      // not a log line (the banner)
    }
  });
  const ports = await new Promise<NodeProcess['ports']>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start within ${timeoutMs} ms: ${stderr}`)), timeoutMs);
    lines.on('line', (line) => {
      try {
        const rec = JSON.parse(line) as { msg?: string; resp?: number; grpc?: number; admin?: number };
        if (rec.msg === 'listening' && rec.resp) {
          clearTimeout(timer);
          resolve({ resp: rec.resp, grpc: rec.grpc!, admin: rec.admin! });
        }
      } catch {
        // not a log line (the banner)
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`node exited (${code}) before listening: ${stderr}`));
    });
  });
  return { proc, ports, exited, logs };
}

/** SIGKILL and wait for the exit. */
export async function kill9(node: Omit<NodeProcess, 'logs'>): Promise<void> {
  if (node.proc.exitCode === null && node.proc.signalCode === null) {
    node.proc.kill('SIGKILL');
    await node.exited;
  }
}

/** SIGTERM and wait for a clean exit; returns the exit code. */
export async function stopGracefully(node: Omit<NodeProcess, 'logs'>): Promise<number | string> {
  if (node.proc.exitCode !== null) return node.proc.exitCode;
  node.proc.kill('SIGTERM');
  const [code] = (await once(node.proc, 'exit')) as [number | null, string | null];
  return code ?? 'signal';
}
