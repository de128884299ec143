export * from './limits.js';
export * from './errors.js';
