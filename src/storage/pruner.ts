/**
 * Pruning: compaction that removes the dead parts of appended segments (for vector posting
 * lists: items a later delete batch names) without changing what the structure reads as.
 *
 * Storage does not know value formats; the composition root injects a `SegmentPruner` (the
 * vector one lives in compute/). The CRDT stays sound because a pruned segment keeps its
 * version and op id and only loses parts that are dead given segments the record holds for
 * good (they leave only under a base or tombstone that covers the pruned segment too):
 *
 * - any replica may prune at any time, in any order: reads are unchanged;
 * - two payloads of one op merge to the shorter (`preferredPayload`), a total order, so merge
 *   stays commutative, associative and idempotent;
 * - a replica that takes another's payload prunes again, so replicas that hold the same
 *   segments end with the same bytes.
 *
 * Nothing covers "everything older than a version", so an append still in flight to this
 * replica (older than a delete, arriving after the prune) is never lost: the delete batch
 * stays and kills it when it lands, and its late arrival queues another prune.
 */
export interface SegmentPruner {
  /** True when storing `segment` may make parts of the segments before it dead. */
  killsEarlier(segment: Buffer): boolean;
  /** True when `segment` holds parts a later segment can kill (late arrivals queue a prune). */
  mayDie(segment: Buffer): boolean;
  /**
   * Given a value's segments in value order (a base, if any, first), the new bytes of each
   * segment with dead parts, or null where nothing changes. Must be deterministic in the
   * segments' bytes; may throw when the value is not of its format (nothing is pruned).
   */
  prune(segments: readonly Buffer[]): (Buffer | null)[];
  /**
   * True when `candidate` is a pruned form of `stored` (what pruning could have made of it).
   * The store takes another replica's shorter payload of an op only then: anything else
   * (a corrupt or truncated payload) is refused and the stored one kept.
   */
  prunedFrom(candidate: Buffer, stored: Buffer): boolean;
}
