/** Near-data operators a replica runs on its local records. */
export { resolveByteRange } from './range.js';
export { globMatch } from './glob.js';
