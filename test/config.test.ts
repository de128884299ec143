import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { defaultLimits, type Limits } from '../src/common/limits.js';
import { ConfigError, configOptions, formatOptionsMarkdown, loadConfig, readClusterSecret, type ConfigOption } from '../src/node/config.js';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { NodeConfig } from '../src/node/node.js';

const dir = mkdtempSync(path.join(tmpdir(), 'ragkv-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const cwd = path.join(dir, 'cwd');

let fileCounter = 0;
/** Writes a config file (an object is serialized, a string written as is) and returns its path. */
function configFile(content: unknown): string {
  const file = path.join(dir, `config-${fileCounter++}.json`);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

/** The value of an option in a loaded config. */
function valueOf(config: NodeConfig, opt: ConfigOption): unknown {
  if (opt.limit) return config.limits[opt.key as keyof Limits];
  if (opt.key !== null && opt.key in config.cluster) {
    const v = config.cluster[opt.key as keyof NodeConfig['cluster']];
    // Seeds are a list in the config; the layers give them as comma-separated text.
    return Array.isArray(v) ? v.join(',') : v;
  }
  return config[opt.key as keyof NodeConfig];
}

function throwsConfig(fn: () => unknown, message: string | RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

/**
 * Three distinct valid values per option, for the file, env and flag layers, each differing
 * from the default, so a layer that is skipped or wrongly preferred changes the result.
 */
function layerValues(opt: ConfigOption): { file: unknown; text: [string, string]; expected: [unknown, unknown, unknown] } {
  switch (opt.kind) {
    case 'port':
      return { file: 1001, text: ['1002', '1003'], expected: [1001, 1002, 1003] };
    case 'count': {
      const base = Math.max(opt.defaultValue as number, 3) + 2;
      return { file: base - 1, text: [String(base - 2), String(base - 3)], expected: [base - 1, base - 2, base - 3] };
    }
    case 'path':
      return { file: '/srv/file', text: ['/srv/env', '/srv/flag'], expected: ['/srv/file', '/srv/env', '/srv/flag'] };
    case 'secretFile': {
      // Secret files must exist and hold a secret: three real ones.
      const [f, e, g] = ['file', 'env', 'flag'].map((name) => {
        const p = path.join(secretDir, name);
        writeFileSync(p, `a cluster secret from the ${name}\n`);
        return p;
      });
      return { file: f, text: [e!, g!], expected: [f, e, g] };
    }
    case 'host':
      return { file: 'file.example', text: ['env.example', '::1'], expected: ['file.example', 'env.example', '::1'] };
    case 'durability':
      return { file: 'commit', text: ['none', 'commit'], expected: ['commit', 'none', 'commit'] };
    case 'logLevel':
      return { file: 'debug', text: ['warn', 'trace'], expected: ['debug', 'warn', 'trace'] };
    case 'text':
      if (opt.key === 'seeds') return { file: 'a:1', text: ['b:2,c:3', 'dns:ragkv-peers:7380'], expected: ['a:1', 'b:2,c:3', 'dns:ragkv-peers:7380'] };
      return { file: 'from-file', text: ['from-env', 'from-flag'], expected: ['from-file', 'from-env', 'from-flag'] };
    case 'level':
      return opt.defaultValue === 'ALL'
        ? { file: 'ONE', text: ['quorum', 'ONE'], expected: ['ONE', 'QUORUM', 'ONE'] }
        : { file: 'ALL', text: ['all', opt.defaultValue === 'ONE' ? 'QUORUM' : 'ONE'], expected: ['ALL', 'ALL', opt.defaultValue === 'ONE' ? 'QUORUM' : 'ONE'] };
    case 'configFile':
      throw new Error('not a layered value');
  }
}

const secretDir = mkdtempSync(path.join(tmpdir(), 'ragkv-secrets-'));
after(() => rmSync(secretDir, { recursive: true, force: true }));

describe('loadConfig defaults', () => {
  it('uses every default when nothing is given', () => {
    const config = loadConfig([], {}, cwd);
    assert.deepEqual(config, {
      dataDir: path.join(cwd, 'data'),
      host: '127.0.0.1',
      respPort: 6380,
      grpcPort: 50051,
      adminPort: 9180,
      durability: 'fsync',
      logLevel: 'info',
      limits: { ...defaultLimits },
      cluster: {
        nodeId: '',
        peerPort: 7380,
        seeds: [],
        clusterName: 'ragkv',
        clusterSecretFile: '',
        advertiseHost: '',
        zone: '',
        replicas: 3,
        readConsistency: 'ONE',
        writeConsistency: 'QUORUM',
        expectMembers: 1,
        streamBytesPerSec: 64 * 1024 * 1024,
      },
    });
  });

  it('reads the cluster secret file at load: a missing file or a secret under 16 bytes is a configuration error naming the option', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ragkv-secret-'));
    try {
      const good = path.join(dir, 'secret');
      writeFileSync(good, 'sixteen bytes or more\n');
      assert.equal(loadConfig(['--cluster-secret-file', good], {}).cluster.clusterSecretFile, good);
      assert.equal(readClusterSecret(good).toString(), 'sixteen bytes or more', 'the trailing newline is not part of it');
      const short = path.join(dir, 'short');
      writeFileSync(short, 'too short\n');
      assert.throws(() => loadConfig(['--cluster-secret-file', short], {}), /--cluster-secret-file'? names '.*short', which holds 9 bytes; a cluster secret must have at least 16/);
      assert.throws(() => loadConfig(['--cluster-secret-file', path.join(dir, 'none')], {}), /--cluster-secret-file'? names '.*none', which cannot be read/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('has one option per Limits key, with kebab flag and RAGKV_ variable', () => {
    for (const name of Object.keys(defaultLimits)) {
      const opt = configOptions.find((o) => o.key === name);
      assert.ok(opt, `limit '${name}' has no option`);
      assert.equal(opt.limit, true);
      assert.equal(opt.defaultValue, defaultLimits[name as keyof Limits]);
    }
    for (const opt of configOptions) {
      assert.equal(opt.env, `RAGKV_${opt.flag.toUpperCase().replace(/-/g, '_')}`);
    }
    assert.equal(configOptions.find((o) => o.key === 'keyBytesMax')?.flag, 'key-bytes-max');
    assert.equal(configOptions.find((o) => o.key === 'dataDir')?.env, 'RAGKV_DATA');
  });
});

describe('loadConfig precedence: flag > env > file > default', () => {
  for (const opt of configOptions.filter((o) => o.key !== null)) {
    it(`--${opt.flag} / ${opt.env} / '${opt.key}'`, () => {
      const values = layerValues(opt);
      const file = configFile({ [opt.key as string]: values.file });
      const env = { RAGKV_CONFIG: file, [opt.env]: values.text[0] };

      const shownDefault = opt.kind === 'path' ? path.resolve(cwd, opt.defaultValue as string) : opt.defaultValue;
      assert.notDeepEqual(values.expected[0], shownDefault, 'file value must differ from default');
      assert.deepEqual(valueOf(loadConfig([], {}, cwd), opt), shownDefault, 'default');
      assert.deepEqual(valueOf(loadConfig(['--config', file], {}, cwd), opt), values.expected[0], 'file beats default');
      assert.deepEqual(valueOf(loadConfig([], env, cwd), opt), values.expected[1], 'env beats file');
      assert.deepEqual(valueOf(loadConfig([`--${opt.flag}`, values.text[1]], env, cwd), opt), values.expected[2], 'flag beats env');
      assert.deepEqual(valueOf(loadConfig([`--${opt.flag}=${values.text[1]}`], env, cwd), opt), values.expected[2], '--flag=value form');
    });
  }

  it('--config beats RAGKV_CONFIG', () => {
    const fromEnv = configFile({ respPort: 1 });
    const fromFlag = configFile({ respPort: 2 });
    assert.equal(loadConfig(['--config', fromFlag], { RAGKV_CONFIG: fromEnv }, cwd).respPort, 2);
    assert.equal(loadConfig([], { RAGKV_CONFIG: fromEnv }, cwd).respPort, 1);
  });

  it('reads limits nested under "limits" as well as at top level', () => {
    const nested = configFile({ limits: { keyBytesMax: 100, fieldBytesMax: 200 } });
    const flat = configFile({ keyBytesMax: 100, fieldBytesMax: 200 });
    for (const file of [nested, flat]) {
      const config = loadConfig(['--config', file], {}, cwd);
      assert.equal(config.limits.keyBytesMax, 100);
      assert.equal(config.limits.fieldBytesMax, 200);
    }
  });

  it('the last of a repeated flag wins', () => {
    assert.equal(loadConfig(['--resp-port', '1', '--resp-port=2'], {}, cwd).respPort, 2);
  });

  it('treats an empty environment variable as unset', () => {
    assert.equal(loadConfig([], { RAGKV_RESP_PORT: '' }, cwd).respPort, 6380);
  });

  it('accepts port 0 (any free port) from every source', () => {
    assert.equal(loadConfig(['--resp-port', '0'], {}, cwd).respPort, 0);
    assert.equal(loadConfig([], { RAGKV_GRPC_PORT: '0' }, cwd).grpcPort, 0);
    assert.equal(loadConfig(['--config', configFile({ adminPort: 0 })], {}, cwd).adminPort, 0);
  });

  it('resolves relative data paths against cwd (flag, env) or the file directory (file)', () => {
    assert.equal(loadConfig(['--data', 'd1'], {}, cwd).dataDir, path.join(cwd, 'd1'));
    assert.equal(loadConfig([], { RAGKV_DATA: 'd2' }, cwd).dataDir, path.join(cwd, 'd2'));
    assert.equal(loadConfig(['--config', configFile({ dataDir: 'd3' })], {}, cwd).dataDir, path.join(dir, 'd3'));
    // The file path itself is relative to cwd.
    const file = configFile({ respPort: 7 });
    assert.equal(loadConfig(['--config', path.relative(cwd, file)], {}, cwd).respPort, 7);
  });
});

describe('loadConfig errors', () => {
  it('unknown flag', () => {
    throwsConfig(() => loadConfig(['--foo'], {}, cwd), "unknown option '--foo' (see ragkv --help)");
    throwsConfig(() => loadConfig(['--foo=1'], {}, cwd), "unknown option '--foo' (see ragkv --help)");
  });

  it('positional argument and missing value', () => {
    throwsConfig(() => loadConfig(['data'], {}, cwd), "unexpected argument 'data' (see ragkv --help)");
    throwsConfig(() => loadConfig(['--data'], {}, cwd), "option '--data' needs a value <dir>");
    throwsConfig(() => loadConfig(['--data', '--host', 'x'], {}, cwd), "option '--data' needs a value <dir>");
    throwsConfig(() => loadConfig(['--data='], {}, cwd), "'--data' must not be empty");
  });

  it('bad port from a flag, the environment and the file', () => {
    throwsConfig(() => loadConfig(['--resp-port', 'abc'], {}, cwd), "'--resp-port' must be an integer from 0 to 65535, got 'abc'");
    throwsConfig(() => loadConfig(['--resp-port=65536'], {}, cwd), "'--resp-port' must be an integer from 0 to 65535, got '65536'");
    throwsConfig(() => loadConfig(['--admin-port', '-1'], {}, cwd), "'--admin-port' must be an integer from 0 to 65535, got '-1'");
    throwsConfig(() => loadConfig(['--grpc-port', '1.5'], {}, cwd), "'--grpc-port' must be an integer from 0 to 65535, got '1.5'");
    throwsConfig(() => loadConfig([], { RAGKV_RESP_PORT: 'x1' }, cwd), "'RAGKV_RESP_PORT' must be an integer from 0 to 65535, got 'x1'");
    const file = configFile({ respPort: '6380' });
    throwsConfig(
      () => loadConfig(['--config', file], {}, cwd),
      `'respPort' in config file '${file}' must be an integer from 0 to 65535, got "6380"`,
    );
  });

  it('bad durability, log level and limit', () => {
    throwsConfig(() => loadConfig(['--durability', 'always'], {}, cwd), "'--durability' must be one of fsync, commit, none, got 'always'");
    throwsConfig(() => loadConfig([], { RAGKV_LOG_LEVEL: 'loud' }, cwd), /^'RAGKV_LOG_LEVEL' must be one of fatal, error, warn, info, debug, trace, silent, got 'loud'$/);
    throwsConfig(() => loadConfig(['--key-bytes-max', '0'], {}, cwd), "'--key-bytes-max' must be a positive integer, got '0'");
    throwsConfig(() => loadConfig(['--key-bytes-max', '1k'], {}, cwd), "'--key-bytes-max' must be a positive integer, got '1k'");
    const file = configFile({ limits: { scanLimitMax: -5 } });
    throwsConfig(() => loadConfig(['--config', file], {}, cwd), `'scanLimitMax' in config file '${file}' must be a positive integer, got -5`);
    const host = configFile({ host: 42 });
    throwsConfig(() => loadConfig(['--config', host], {}, cwd), `'host' in config file '${host}' must be a string, got 42`);
  });

  it('limits that contradict each other name the limits', () => {
    throwsConfig(
      () => loadConfig(['--value-bytes-max', '1000', '--grpc-message-bytes-max', '999'], {}, cwd),
      /^invalid limits: .*'grpcMessageBytesMax' must be at least 'valueBytesMax'/,
    );
    throwsConfig(
      () => loadConfig(['--output-buffer-bytes-max', '1000', '--output-buffers-total-bytes-max', '999'], {}, cwd),
      /^invalid limits: .*'outputBuffersTotalBytesMax' must be at least 'outputBufferBytesMax'/,
    );
    throwsConfig(
      () => loadConfig(['--close-linger-ms-max', String(2 ** 31)], {}, cwd),
      /^invalid limits: .*'closeLingerMsMax' must be at most 2147483647 \(the longest timer\), got 2147483648/,
    );
  });

  it('unknown key in the config file names the key and the file', () => {
    const file = configFile({ respPort: 1, resp_port: 2 });
    throwsConfig(() => loadConfig(['--config', file], {}, cwd), `unknown key 'resp_port' in config file '${file}'`);
    const limit = configFile({ limits: { keyBytes: 2 } });
    throwsConfig(() => loadConfig(['--config', limit], {}, cwd), `unknown limit 'limits.keyBytes' in config file '${limit}'`);
    const notLimit = configFile({ limits: { respPort: 2 } });
    throwsConfig(() => loadConfig(['--config', notLimit], {}, cwd), `unknown limit 'limits.respPort' in config file '${notLimit}'`);
    const twice = configFile({ limits: { keyBytesMax: 2 }, keyBytesMax: 3 });
    throwsConfig(() => loadConfig(['--config', twice], {}, cwd), new RegExp(`limit 'keyBytesMax' is set twice in config file '${twice}'`));
  });

  it('invalid JSON, a non-object and a missing file name the file', () => {
    const bad = configFile('{ "respPort": 1, }');
    throwsConfig(() => loadConfig(['--config', bad], {}, cwd), new RegExp(`^config file '${bad}' is not valid JSON: `));
    const array = configFile([1]);
    throwsConfig(() => loadConfig(['--config', array], {}, cwd), `config file '${array}' must hold a JSON object`);
    const missing = path.join(dir, 'missing.json');
    throwsConfig(() => loadConfig([], { RAGKV_CONFIG: missing }, cwd), new RegExp(`^cannot read config file '${missing}': ENOENT`));
  });
});

describe('README', () => {
  it("holds the options table exactly as the option table makes it (no option missing, none stale)", () => {
    const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
    assert.ok(readme.includes(formatOptionsMarkdown()), 'README.md "Configuration" table differs from formatOptionsMarkdown(): regenerate it');
  });
});
