/** Membership (SWIM), placement on hash slots, the internode transport. */
export { hashTagOf } from '../common/slots.js';
export { PlacementTable } from './placement/table.js';
export { murmur3 } from './hash.js';
export { Channel, TransportError, type NodeId, type Transport, type Handler, type TransportErrorCode } from './transport.js';
export { createTcpTransport, type TcpTransport } from './tcp-transport.js';
