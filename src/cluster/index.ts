/** Membership and placement. Single-node today; the ring and SWIM membership come next. */
export { hashTagOf } from '../common/slots.js';
export { Ring, type RingMember, type RingOptions, defaultVnodes } from './ring.js';
export { murmur3 } from './hash.js';
export { Channel, TransportError, type NodeId, type Transport, type Handler, type TransportErrorCode } from './transport.js';
export { createTcpTransport, type TcpTransport } from './tcp-transport.js';
