/**
 * The layout DESIGN.md draws, checked on the sources: layers import only layers below them,
 * no import cycles, the gRPC client imports no server code, and nothing a server runs
 * imports the load generator, the simulator or a dev dependency (so a production install,
 * `npm ci --omit=dev`, runs it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const src = path.join(root, 'src');

/** Layers from the bottom up: a module may import its own layer and the ones before it. */
const layers = ['common', 'storage', 'compute', 'cluster', 'replica', 'coordinator', 'server', 'node', 'cli'];

function sources(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir)) {
    const p = path.join(dir, e);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Static and dynamic import specifiers of a file (type-only imports included: they are dependencies too). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\s)(?:import|export)\s[^'";]*?from\s*'([^']+)'|import\(\s*'([^']+)'\s*\)/g)) out.push((m[1] ?? m[2])!);
  return out;
}

const files = sources(src);
const layerOf = (file: string) => path.relative(src, file).split(path.sep)[0]!;
const resolve = (from: string, spec: string) => path.resolve(path.dirname(from), spec.replace(/\.js$/, '.ts'));

test('layers import only the layers below them; the client only common', () => {
  const wrong: string[] = [];
  for (const f of files) {
    const mine = layerOf(f);
    for (const spec of importsOf(f)) {
      if (!spec.startsWith('.')) continue;
      const target = resolve(f, spec);
      if (!target.startsWith(src)) continue;
      const theirs = layerOf(target);
      const ok = mine === 'client' ? theirs === 'client' || theirs === 'common' : layers.indexOf(theirs) <= layers.indexOf(mine) && theirs !== 'client';
      if (!ok) wrong.push(`${path.relative(root, f)} imports ${path.relative(root, target)}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('no import cycles among the sources', () => {
  const graph = new Map(files.map((f) => [f, importsOf(f).filter((s) => s.startsWith('.')).map((s) => resolve(f, s))]));
  const state = new Map<string, 'active' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, stack: string[]) => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'active') {
      cycles.push([...stack.slice(stack.indexOf(f)), f].map((x) => path.relative(root, x)).join(' > '));
      return;
    }
    state.set(f, 'active');
    for (const next of graph.get(f) ?? []) visit(next, [...stack, f]);
    state.set(f, 'done');
  };
  for (const f of files) visit(f, []);
  assert.deepEqual(cycles, []);
});

test('a server needs neither the tools, the simulator nor any dev dependency', () => {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
  const dev = new Set(Object.keys(pkg.devDependencies));
  const wrong: string[] = [];
  for (const f of files) {
    for (const spec of importsOf(f)) {
      if (spec.startsWith('.')) {
        const target = resolve(f, spec);
        // The one way in, on request only: `ragkv bench`, which says so when the tools are absent.
        if (!target.startsWith(src) && !(f.endsWith(path.join('cli', 'main.ts')) && spec.includes('tools/bench'))) wrong.push(`${path.relative(root, f)} imports ${spec}`);
        continue;
      }
      if (spec.startsWith('node:')) continue;
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
      if (dev.has(name) || !(name in pkg.dependencies)) wrong.push(`${path.relative(root, f)} imports ${name}, not a production dependency`);
    }
  }
  assert.deepEqual(wrong, []);
  for (const tool of ['ioredis', 'etcd3', 'hdr-histogram-js']) assert.ok(dev.has(tool), `${tool} is a dev dependency (the load generator's)`);
});

test('no merge conflict left in the sources, tests, tools or documentation', () => {
  const files = ['src', 'test', 'testing', 'tools', 'examples', 'docs'].flatMap((d) => {
    const out: string[] = [];
    const walk = (dir: string) => {
      for (const e of readdirSync(dir)) {
        const p = path.join(dir, e);
        if (statSync(p).isDirectory()) walk(p);
        else if (/\.(ts|md|proto|py|sh|json)$/.test(p)) out.push(p);
      }
    };
    walk(path.join(root, d));
    return out;
  });
  files.push(path.join(root, 'README.md'), path.join(root, '.ci', 'run'));
  assert.ok(files.length > 100, `found the files (${files.length})`);
  const conflicted = files.filter((f) => /^(<<<<<<<|>>>>>>>) /m.test(readFileSync(f, 'utf8')));
  assert.deepEqual(conflicted.map((f) => path.relative(root, f)), []);
});
