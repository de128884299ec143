import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ArgvReader } from '../src/common/argv.js';

const read = (argv: string[], passThrough = false) => {
  const r = new ArgvReader(argv, (m) => new Error(m));
  const out: [string, string][] = [];
  while (r.next()) {
    if (r.name === '--') {
      out.push(['--', r.rest().join(' ')]);
      break;
    }
    out.push([r.name, r.name === '--flag' ? '' : r.value(passThrough && r.name === '--pass')]);
  }
  return out;
};

test('options read as --name value and --name=value; -- ends options', () => {
  assert.deepEqual(read(['--a', '1', '--b=2', '--c=', '--flag', '--d', 'x=y', '--', '--e', 'f']), [
    ['--a', '1'],
    ['--b', '2'],
    ['--c', ''],
    ['--flag', ''],
    ['--d', 'x=y'],
    ['--', '--e f'],
  ]);
});

test('a missing value, or one that looks like an option, is refused unless passed through', () => {
  assert.throws(() => read(['--a']), /--a needs a value/);
  assert.throws(() => read(['--a', '--b', '1']), /--a needs a value/);
  assert.deepEqual(read(['--pass', '--durability', '--b', '1'], true), [
    ['--pass', '--durability'],
    ['--b', '1'],
  ]);
});
