import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, watch, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { configOptions } from '../src/node/config.js';

// Compiled to dist/test/: the repository root is two levels up.
const root = fileURLToPath(new URL('../../', import.meta.url));
const bin = path.join(root, 'bin', 'ragkv.js');
const dir = mkdtempSync(path.join(tmpdir(), 'ragkv-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The test runner's environment without RAGKV_* variables, plus `extra`. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RAGKV_')));
  return { ...env, ...extra };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/ragkv.js ...args` to completion. */
function ragkv(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: dir, env: cleanEnv(env) });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('ragkv CLI', () => {
  it('--help lists every option with its default and environment variable', async () => {
    const run = await ragkv(['--help']);
    assert.equal(run.code, 0);
    assert.equal(run.stderr, '');
    const lines = run.stdout.split('\n');
    for (const opt of configOptions) {
      // Each option is a block: the flag line, the description, then defaults and names.
      const at = lines.findIndex((l) => l.startsWith(`  --${opt.flag} `));
      assert.ok(at >= 0, `--${opt.flag} is missing from --help`);
      const block = lines.slice(at, at + 3).join('\n');
      const shown = opt.defaultValue === undefined ? 'none' : String(opt.defaultValue);
      assert.ok(block.includes(`default: ${shown} `), `--${opt.flag}: default ${shown} missing in\n${block}`);
      assert.ok(block.includes(`env: ${opt.env}`), `--${opt.flag}: ${opt.env} missing in\n${block}`);
      if (opt.key !== null) assert.ok(block.includes(`config key: ${opt.key}`), `--${opt.flag}: key missing`);
    }
  });

  it('help, -h and start --help print the same help', async () => {
    const reference = (await ragkv(['--help'])).stdout;
    for (const args of [['help'], ['-h'], ['start', '--help'], ['start', '--data', 'x', '-h']]) {
      const run = await ragkv(args);
      assert.equal(run.code, 0, args.join(' '));
      assert.equal(run.stdout, reference, args.join(' '));
    }
  });

  it('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
    const run = await ragkv(['--version']);
    assert.equal(run.code, 0);
    assert.equal(run.stdout, `ragkv ${pkg.version}\n`);
  });

  it('an unknown command exits 2 with a message', async () => {
    const run = await ragkv(['frobnicate']);
    assert.equal(run.code, 2);
    assert.equal(run.stdout, '');
    assert.equal(run.stderr, "ragkv: unknown command 'frobnicate' (see ragkv --help)\n");
  });

  it('no command or an option before the command exits 2', async () => {
    const none = await ragkv([]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^ragkv: missing command\n/);
    const early = await ragkv(['--data', 'x']);
    assert.equal(early.code, 2);
    assert.match(early.stderr, /unknown option '--data' before a command/);
  });

  it('start with a bad option or variable exits 2 with the precise error', async () => {
    let run = await ragkv(['start', '--foo']);
    assert.equal(run.code, 2);
    assert.equal(run.stderr, "ragkv: unknown option '--foo' (see ragkv --help)\n");
    run = await ragkv(['start', '--resp-port', 'abc']);
    assert.equal(run.code, 2);
    assert.equal(run.stderr, "ragkv: '--resp-port' must be an integer from 0 to 65535, got 'abc'\n");
    run = await ragkv(['start'], { RAGKV_DURABILITY: 'sometimes' });
    assert.equal(run.code, 2);
    assert.equal(run.stderr, "ragkv: 'RAGKV_DURABILITY' must be one of fsync, commit, none, got 'sometimes'\n");
  });

  it('start exits 1 and logs the cause when the node cannot start', async () => {
    const file = path.join(dir, 'a-file');
    writeFileSync(file, 'not a directory');
    const data = path.join(file, 'data');
    const run = await ragkv(['start', '--data', data, '--resp-port', '0', '--grpc-port', '0', '--admin-port', '0']);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /^ragkv: cannot start: /m);
    const fatal = run.stdout
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { level: string; msg: string })
      .find((l) => l.level === 'fatal');
    assert.equal(fatal?.msg, 'start failed');
  });

  it('start: a SIGTERM while the node is still starting closes it cleanly once started (exit 0)', { timeout: 60_000 }, async () => {
    const data = path.join(dir, 'data-early-stop');
    mkdirSync(data);
    // The signal goes out when the node takes its data directory's lock (the event), before it
    // opens storage and binds its ports: the node is mid-start.
    const watcher = watch(data, (_, file) => {
      if (file === 'ragkv.pid' && child.exitCode === null && child.signalCode === null) {
        watcher.close();
        child.kill('SIGTERM');
      }
    });
    const child = spawn(process.execPath, [bin, 'start', '--data', data, '--resp-port', '0', '--grpc-port', '0', '--admin-port', '0', '--durability', 'none'], {
      cwd: dir,
      env: cleanEnv(),
    });
    const messages: string[] = [];
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    child.stderr.resume();
    const lines = createInterface({ input: child.stdout }).on('line', (line) => messages.push((JSON.parse(line) as { msg: string }).msg));
    const outputRead = new Promise<void>((resolve) => lines.once('close', resolve));
    try {
      assert.deepEqual(await exited, { code: 0, signal: null }, `log: ${messages.join(' | ')}`);
      await outputRead;
      const shuttingDown = messages.indexOf('shutting down (send the signal again to exit at once)');
      assert.ok(messages.indexOf('listening') >= 0 && messages.indexOf('listening') < shuttingDown, `started, then closed: ${messages.join(' | ')}`);
      assert.equal(messages.at(-1), 'stopped');
    } finally {
      watcher.close();
      child.kill('SIGKILL');
    }
  });

  it('start binds free ports, logs them, serves /health and exits 0 on SIGTERM', { timeout: 60_000 }, async () => {
    const data = path.join(dir, 'data');
    const child = spawn(process.execPath, [bin, 'start', '--data', data, '--resp-port', '0', '--grpc-port', '0', '--admin-port', '0'], {
      cwd: dir,
      env: cleanEnv(),
    });
    let stdout = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal }));
    });
    try {
      const ports = await new Promise<{ resp: number; grpc: number; admin: number }>((resolve, reject) => {
        child.stdout.setEncoding('utf8').on('data', (d: string) => {
          stdout += d;
          for (const line of stdout.split('\n').slice(0, -1)) {
            if (!line.startsWith('{')) return reject(new Error(`stdout line is not a JSON log line: ${line}`));
            const entry = JSON.parse(line) as { msg: string; resp: number; grpc: number; admin: number };
            if (entry.msg === 'listening') resolve(entry);
          }
        });
        void exited.then(({ code }) => reject(new Error(`exited with ${code} before listening:\n${stderr}\n${stdout}`)));
      });
      for (const port of [ports.resp, ports.grpc, ports.admin]) assert.ok(port > 0);

      const health = await fetch(`http://127.0.0.1:${ports.admin}/health`);
      assert.equal(health.status, 200);
      assert.deepEqual(await health.json(), { status: 'ok' });
      const metrics = await fetch(`http://127.0.0.1:${ports.admin}/metrics`);
      assert.match(await metrics.text(), /^ragkv_keys \d+$/m);
      // The RESP port answers a PING, so the logged port is the real one.
      const pong = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(ports.resp, '127.0.0.1', () => socket.write('*1\r\n$4\r\nPING\r\n'));
        socket.setEncoding('utf8').once('data', (d: string) => {
          socket.destroy();
          resolve(d);
        });
        socket.on('error', reject);
      });
      assert.equal(pong, '+PONG\r\n');

      child.kill('SIGTERM');
      assert.deepEqual(await exited, { code: 0, signal: null });
      assert.match(stderr, new RegExp(`redis-cli -h 127\\.0\\.0\\.1 -p ${ports.resp}\\b`));
      assert.ok(stderr.includes(`127.0.0.1:${ports.grpc} `), stderr);
      // The child runs outside the repository, so the proto path is absolute.
      assert.ok(stderr.includes(`proto: ${path.join(root, 'proto', 'ragkv', 'v1', 'rawkv.proto')}`), stderr);
      assert.ok(stderr.includes(`curl http://127.0.0.1:${ports.admin}/metrics`), stderr);
      assert.match(stdout, /"msg":"stopped"/);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
