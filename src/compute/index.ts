/** Near-data operators a replica runs on its local records. */
export { resolveByteRange } from './range.js';
export { globMatch } from './glob.js';
export {
  encodeItemBatch,
  encodeDeleteBatch,
  parseSegments,
  listShape,
  ItemBatch,
  type ElementType,
  type ItemBatchInput,
  type VectorItemInput,
  VECTOR_DIM_MAX,
  ITEM_ID_BYTES_MAX,
  elementBytes,
  FLOAT16_TABLE,
  alignedCopy,
  float32FromBytes,
  isBatchRun,
  firstBatchBytes,
  startsWithBatch,
  appendShapeMismatch,
  appendBreaksList,
} from './vector-items.js';
export {
  type VectorSearchRequest,
  type VectorSearchResult,
  type VectorHit,
  type ListSource,
  type ListSearchResult,
  type UnreadableList,
  searchLists,
  finishSearch,
  liveItems,
  checkShape,
} from './vector-search.js';
export { type Metric, parseMetric, distanceToScore, scoreSegments, measureKernelRate, syntheticBatch } from './vector-score.js';
export { TopK, mergeTopK, checkK, SEARCH_K_MAX, type SearchHit, type KeyedHit, type MergeOptions } from './topk.js';
