/** The simulated world: seeded network, simulated clock and a trace, for deterministic cluster tests. */
export { SimClock, SimClockScope, drainMicrotasks, type SimClockOptions } from './clock.js';
export { SimNetwork, SimTransport, type SimNetworkOptions, type SimNetworkStats } from './network.js';
export { SimTrace, formatSimEvent, simTraceCapacityDefault, type SimEvent, type SimEventKind } from './trace.js';
