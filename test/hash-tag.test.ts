import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hashTagOf } from '../src/cluster/index.js';

test('hash tags follow the Redis Cluster rule', () => {
  const tag = (k: string) => hashTagOf(Buffer.from(k)).toString();
  assert.equal(tag('doc:{42}:chunk:7'), '42');
  assert.equal(tag('{42}'), '42');
  assert.equal(tag('plain'), 'plain');
  assert.equal(tag('empty{}tag'), 'empty{}tag', 'an empty tag hashes the whole key');
  assert.equal(tag('open{only'), 'open{only');
  assert.equal(tag('a{b}{c}'), 'b', 'only the first tag counts');
  assert.equal(tag('x}{y}'), 'y', 'a close before the first open is ignored');
});
