import fc from 'fast-check';
import { type Record, emptyRecord, opIdBytes } from '../../src/storage/record.js';
import type { Version } from '../../src/storage/version.js';

/** One write as a delta record; versions are unique across a generated sequence. */
export type OpKind = 'set' | 'append' | 'del' | 'hset' | 'hdel' | 'expire';

export interface GenOp {
  kind: OpKind;
  bytes: Uint8Array;
  field: number;
  atMs: number;
}

const opArb: fc.Arbitrary<GenOp> = fc.record({
  kind: fc.constantFrom<OpKind>('set', 'append', 'append', 'append', 'del', 'hset', 'hdel', 'expire'),
  bytes: fc.uint8Array({ maxLength: 24 }),
  field: fc.integer({ min: 0, max: 3 }),
  // 0 = no expiry; otherwise far in the future, so order of application cannot matter.
  atMs: fc.constantFrom(0, 9e12),
});

/** Sequences of ops with distinct versions (a permutation of timestamps, so versions arrive out of order). */
export const opsArb = (maxLength: number) =>
  fc
    .array(opArb, { minLength: 1, maxLength })
    .chain((ops) =>
      fc
        .shuffledSubarray(
          Array.from({ length: ops.length }, (_, i) => i + 1),
          { minLength: ops.length, maxLength: ops.length },
        )
        .map((order) => ops.map((op, i) => toDelta(op, { ts: order[i]! * 1024, node: 1 + (i % 3) }, i))),
    );

export function toDelta(op: GenOp, version: Version, index: number): Record {
  const d = emptyRecord();
  const bytes = Buffer.from(op.bytes);
  switch (op.kind) {
    case 'set':
      d.base = { version, value: bytes };
      d.expiry = { version, atMs: 0 };
      break;
    case 'append': {
      const opId = Buffer.alloc(opIdBytes);
      opId.writeUInt32BE(index + 1, opIdBytes - 4);
      d.appends = [{ version, opId, bytes }];
      break;
    }
    case 'del':
      d.tomb = version;
      break;
    case 'hset':
      d.fields.set(`f${op.field}`, { version, value: bytes });
      break;
    case 'hdel':
      d.fields.set(`f${op.field}`, { version, value: null });
      break;
    case 'expire':
      d.expiry = { version, atMs: op.atMs };
      break;
  }
  return d;
}

/** Arbitrary records built by merging op sequences. */
export { emptyRecord };
