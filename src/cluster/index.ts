/** Membership and placement. Single-node today; the ring and SWIM membership come next. */
export { hashTagOf } from './hash-tag.js';
