/**
 * Every size, count and queue bound of ragkv lives here. Each is checked where data enters
 * (before anything is allocated for it), and errors name the limit by its key below, so an
 * operator can find and change it. Units go last in names.
 */

export interface Limits {
  /** Largest key, in bytes. */
  keyBytesMax: number;
  /** Largest value carried by one write (SET value, APPEND bytes, HSET field value). */
  valueBytesMax: number;
  /** Largest hash field name, in bytes. */
  fieldBytesMax: number;
  /** Largest number of elements in one RESP command array (command name included). */
  respArrayLengthMax: number;
  /** Largest RESP bulk string accepted from a client. */
  respBulkBytesMax: number;
  /** Largest inline (non-array) RESP command line. */
  respInlineBytesMax: number;
  /** Bytes a client may have sent that are not yet parsed into complete commands. */
  queryBufferBytesMax: number;
  /** Bytes of replies a client has not read yet; past this the client is disconnected. */
  outputBufferBytesMax: number;
  /**
   * Bytes of replies all clients of a server together have not read yet; past this the client
   * holding the most is disconnected.
   */
  outputBuffersTotalBytesMax: number;
  /** Commands of one connection that may be executing (awaiting storage) at once. */
  pipelineInFlightMax: number;
  /** Concurrent client connections per server (RESP). */
  connectionsMax: number;
  /**
   * Milliseconds a connection the server closes (after QUIT, a protocol error, or refused over
   * `connectionsMax`) may take to hand over its last reply; then it is destroyed, read or not.
   */
  closeLingerMsMax: number;
  /** Keys in one multi-key command or batch call. */
  batchKeysMax: number;
  /** Entries one SCAN / RawScan call may return. */
  scanLimitMax: number;
  /** Writes waiting for a storage commit; past this, writes are refused as OVERLOADED. */
  writeQueueMax: number;
  /** Largest gRPC message, both directions. */
  grpcMessageBytesMax: number;
  /** Namespaces (column families, SELECT databases) per node. */
  namespacesMax: number;
  /** Longest namespace name, in bytes. */
  namespaceBytesMax: number;
  /** Largest internode frame; checked from the length prefix before allocating. */
  peerFrameBytesMax: number;
  /** Bytes queued for one peer connection before sends are refused as OVERLOADED. */
  peerSendQueueBytesMax: number;
  /** Requests awaiting a reply on one peer connection. */
  peerRequestsInFlightMax: number;
  /** Hints (writes kept for an unreachable replica) a node stores at most. */
  hintsMax: number;
  /** Bytes of hints a node stores at most. */
  hintBytesMax: number;
  /**
   * Largest clock offset between members, in ms: a member further than this from most of its
   * peers goes out of service. Two serving members may then be up to twice this apart, so a
   * replica refuses versions more than twice this ahead of its clock (`versionAheadMsMax`).
   */
  maxClockOffsetMs: number;
  /** Keys stored on other members whose session floors one client session keeps (RESP connection). */
  sessionKeysMax: number;
  /**
   * Bytes of session floors all RESP connections of a member keep together (about: key,
   * namespace, field names and bookkeeping); past it the least recently used floors of any
   * connection go first.
   */
  sessionBytesTotalMax: number;
  /** Largest gRPC session token, in bytes; older keys are dropped from a token to fit. */
  sessionTokenBytesMax: number;
  /**
   * Free bytes the data directory's filesystem keeps: under this, writes are refused as
   * DISK_FULL before LMDB runs out of space mid-commit (reads go on).
   */
  diskFreeBytesMin: number;
}

const MiB = 1024 * 1024;

/** Defaults; every one can be changed in the config file, by flag or by RAGKV_* variable. */
export const defaultLimits: Readonly<Limits> = Object.freeze({
  keyBytesMax: 1024,
  valueBytesMax: 64 * MiB,
  fieldBytesMax: 512,
  respArrayLengthMax: 1024 * 1024,
  respBulkBytesMax: 64 * MiB + 1024,
  respInlineBytesMax: 64 * 1024,
  queryBufferBytesMax: 1024 * MiB,
  outputBufferBytesMax: 256 * MiB,
  outputBuffersTotalBytesMax: 1024 * MiB,
  pipelineInFlightMax: 1024,
  connectionsMax: 10_000,
  closeLingerMsMax: 5_000,
  batchKeysMax: 100_000,
  scanLimitMax: 100_000,
  writeQueueMax: 100_000,
  grpcMessageBytesMax: 256 * MiB,
  namespacesMax: 1024,
  namespaceBytesMax: 64,
  peerFrameBytesMax: 80 * MiB,
  peerSendQueueBytesMax: 256 * MiB,
  peerRequestsInFlightMax: 10_000,
  hintsMax: 1_000_000,
  hintBytesMax: 1024 * MiB,
  maxClockOffsetMs: 500,
  sessionKeysMax: 4096,
  sessionBytesTotalMax: 64 * MiB,
  sessionTokenBytesMax: 16 * 1024,
  diskFreeBytesMin: 64 * MiB,
});

/** Checks that the limits agree with each other; a broken relation is a configuration error. */
export function validateLimits(limits: Limits): Limits {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new RangeError(`limit '${name}' must be a positive integer, got ${String(value)}`);
    }
  }
  // LMDB keys (1978 bytes max) hold a 6-byte owner prefix (namespace id, key length), the
  // key, then a 28-byte segment suffix or a field name.
  const lmdbKeyBytesMax = 1978;
  if (6 + limits.keyBytesMax + Math.max(28, limits.fieldBytesMax) > lmdbKeyBytesMax) {
    throw new RangeError(
      `'keyBytesMax' + max(28, 'fieldBytesMax') must be at most ${lmdbKeyBytesMax - 6} (LMDB key size), got ${limits.keyBytesMax + Math.max(28, limits.fieldBytesMax)}`,
    );
  }
  if (limits.respBulkBytesMax < limits.valueBytesMax) {
    throw new RangeError(`'respBulkBytesMax' must be at least 'valueBytesMax'`);
  }
  if (limits.queryBufferBytesMax < limits.respBulkBytesMax) {
    throw new RangeError(`'queryBufferBytesMax' must be at least 'respBulkBytesMax'`);
  }
  if (limits.outputBuffersTotalBytesMax < limits.outputBufferBytesMax) {
    throw new RangeError(`'outputBuffersTotalBytesMax' must be at least 'outputBufferBytesMax'`);
  }
  // Node's timers take at most 2^31 - 1 ms; a longer delay fires after 1 ms.
  const timerMsMax = 2 ** 31 - 1;
  if (limits.closeLingerMsMax > timerMsMax) {
    throw new RangeError(`'closeLingerMsMax' must be at most ${timerMsMax} (the longest timer), got ${limits.closeLingerMsMax}`);
  }
  if (limits.peerFrameBytesMax < limits.valueBytesMax + limits.keyBytesMax + 64 * 1024) {
    throw new RangeError(`'peerFrameBytesMax' must exceed 'valueBytesMax' + 'keyBytesMax' + 64 KiB (a replicated write fits one frame)`);
  }
  if (limits.peerSendQueueBytesMax < limits.peerFrameBytesMax) {
    throw new RangeError(`'peerSendQueueBytesMax' must be at least 'peerFrameBytesMax'`);
  }
  if (limits.namespaceBytesMax > 255) {
    throw new RangeError(`'namespaceBytesMax' must be at most 255 (a session token carries it with a u8 length)`);
  }
  if (limits.sessionTokenBytesMax < 2 * (limits.keyBytesMax + limits.namespaceBytesMax + 256)) {
    throw new RangeError(`'sessionTokenBytesMax' must hold two keys' floors: at least 2 × ('keyBytesMax' + 'namespaceBytesMax' + 256)`);
  }
  if (limits.grpcMessageBytesMax < limits.valueBytesMax) {
    throw new RangeError(`'grpcMessageBytesMax' must be at least 'valueBytesMax'`);
  }
  checkBounds();
  return limits;
}

/** Merges partial overrides onto the defaults and validates the result. */
export function makeLimits(overrides: Partial<Limits> = {}): Limits {
  return validateLimits({ ...defaultLimits, ...overrides });
}

/**
 * Fixed bounds: sizes and counts that are part of a format or protocol (so not settings), and
 * the constants of background work. Each is used where data enters through the module named
 * beside it; `checkBounds` says how they relate to each other and to the limits above.
 */
export const bounds = Object.freeze({
  // ---- membership (cluster/membership: codec and member table)
  /** Longest member id, in bytes (a u8 length in the internode handshake). */
  memberIdBytesMax: 255,
  /** Longest member address, in bytes. */
  addressBytesMax: 255,
  /** Longest zone name, in bytes. */
  zoneBytesMax: 64,
  /** Largest member metadata, in bytes. */
  metaBytesMax: 16 * 1024,
  /** Members one node tracks (dead and left included until reclaimed). */
  membersMax: 10_000,
  /** Gossip updates one decoded membership message may carry. */
  gossipUpdatesMax: 1024,
  // ---- internode handshake (cluster/frame)
  /** Largest frame before the handshake is done, so an unknown peer cannot make us allocate much. */
  handshakeFrameBytesMax: 1024,
  /** Warnings about refused or broken inbound connections logged per window; the rest are counted (a stranger dialing in a loop cannot flood the log). */
  inboundWarningsMax: 10,
  inboundWarningWindowMs: 10_000,
  // ---- vector lists and search (compute)
  /** Largest vector dimension. */
  vectorDimMax: 4096,
  /** Largest vector item id, in bytes (a u8 length in an item batch). */
  itemIdBytesMax: 255,
  /** Largest k a search may ask for. */
  searchKMax: 10_000,
  // ---- read repair and hinted handoff (coordinator, replica/hints)
  /** Share of reads at level ONE that also check the other replicas in the background. */
  readRepairChance: 0.1,
  /** Hints sent to one member per replay message. */
  hintReplayBatchMax: 256,
  /** How often hints held here are offered to their members (ms). */
  hintReplayIntervalMs: 500,
  /** Deadline of one hint replay message (ms). */
  hintReplayTimeoutMs: 5000,
  // ---- anti-entropy (replica/anti-entropy)
  /** Time between anti-entropy rounds, each with one peer (ms). */
  antiEntropyIntervalMs: 1000,
  /** Buckets of 64 slots compared per round: a full pass with one peer takes 256 / this rounds. */
  antiEntropyBucketsPerRound: 16,
  /**
   * Slots rehashed per round even if no write marked them (records an expiry sweep rewrote):
   * a full pass over 16384 slots takes about 2 h at 2 per round, at well under 1% of a core.
   */
  antiEntropyRefreshSlotsPerRound: 2,
  /** Keys pulled and pushed per round at most. */
  antiEntropyKeysPerRound: 2000,
  /** Keys hashed per round to refresh digests that writes marked, at most (bounds its CPU under write load). */
  antiEntropyHashKeysPerRound: 4000,
  // ---- sessions (coordinator/session)
  /** Fields one session floor tracks per key; past this the oldest are dropped. */
  sessionFloorFieldsMax: 32,
  // ---- background work on each node (node)
  /** Expired keys deleted per sweep, and how often the sweeper runs (ms). */
  sweepKeysMax: 1000,
  sweepIntervalMs: 100,
  /** Records pruned (deleted vector items removed) per sweep, and per compaction write. */
  pruneRecordsMax: 16,
  pruneBatchMax: 64,
});

/** Checks how the fixed bounds relate to each other; a broken relation is a bug. */
export function checkBounds(): void {
  if (bounds.memberIdBytesMax > 255 || bounds.itemIdBytesMax > 255) throw new RangeError('member ids and item ids carry u8 lengths: at most 255 bytes');
  if (bounds.handshakeFrameBytesMax < 4 + 2 + 2 * (1 + bounds.memberIdBytesMax) + 32 + 1 + 32 + 11) {
    throw new RangeError("'handshakeFrameBytesMax' must hold a handshake with the longest names, a nonce and a proof");
  }
  if (!(bounds.readRepairChance >= 0 && bounds.readRepairChance <= 1)) throw new RangeError('readRepairChance is a probability');
  if (bounds.hintReplayTimeoutMs >= bounds.hintReplayIntervalMs * 100) throw new RangeError('hint replay timeout out of proportion to its interval');
}

/** How far ahead of a member's clock a version may be and still be taken (see 'maxClockOffsetMs'). */
export function versionAheadMsMax(limits: Pick<Limits, 'maxClockOffsetMs'>): number {
  return 2 * limits.maxClockOffsetMs;
}
