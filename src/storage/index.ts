/** Records on LMDB: the CRDT record, its merge, and the store that applies deltas. */
export { LmdbStore, openStore, type StoreOptions, type Durability } from './lmdb-store.js';
export { DiskSpace, type DiskState } from './disk-space.js';
export { type Record, type Segment, type FieldValue, type Expiry, type RecordView, emptyRecord, merge, normalize, expire, view, opIdBytes, compareSegments } from './record.js';
export { type Version, compareVersions, isNewer, expiryTombVersion } from './version.js';
export { type Clock, systemClock, HybridClock } from './hlc.js';
