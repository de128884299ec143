/** How many of a key's replicas a consistency level needs. */
import type { Level } from './api.js';

/** Replicas a level needs out of n: ONE 1, QUORUM a majority, ALL every one. */
export function required(level: Level, n: number): number {
  return level === 'ONE' ? 1 : level === 'ALL' ? n : Math.floor(n / 2) + 1;
}
