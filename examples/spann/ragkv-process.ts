/** Starts `ragkv start` as a child process on free ports for the example and the benchmark. */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** bin/ragkv.js (this file compiles to dist/examples/spann/). */
export const ragkvBin: string = fileURLToPath(new URL('../../../bin/ragkv.js', import.meta.url));

/** A running ragkv process. */
export interface RagkvProcess {
  proc: ChildProcess;
  port: number;
  dataDir: string;
  stop(): Promise<void>;
}

/**
 * Starts a single ragkv node in a fresh temp dir (`--durability none` by default: the
 * benchmark measures reads) and resolves once its log says `listening`.
 */
export async function startRagkv(extraArgs: string[] = ['--durability', 'none'], timeoutMs = 30_000): Promise<RagkvProcess> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ragkv-spann-'));
  const proc = spawn(process.execPath, [ragkvBin, 'start', '--data', dataDir, '--host', '127.0.0.1', '--resp-port', '0', '--grpc-port', '0', '--admin-port', '0', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const lines = createInterface({ input: proc.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ragkv did not start within ${timeoutMs} ms: ${stderr}`)), timeoutMs);
    lines.on('line', (line) => {
      try {
        const rec = JSON.parse(line) as { msg?: string; resp?: number };
        if (rec.msg === 'listening' && rec.resp) {
          clearTimeout(timer);
          resolve(rec.resp);
        }
      } catch {
        // the banner
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`ragkv exited before listening: ${stderr}`));
    });
  });
  return {
    proc,
    port,
    dataDir,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
