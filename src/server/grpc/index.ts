/** The gRPC `ragkv.v1.RawKV` server: what other layers may use. */
export { startGrpcServer, type GrpcServer, type GrpcServerOptions } from './server.js';
export type { GrpcLogger } from './handlers.js';
export { toGrpcFailure, type GrpcFailure } from './status.js';
export { rawKvProtoPath, protoLoaderOptions, rawKvServiceName } from '../../common/grpc/proto.js';
export * from '../../common/grpc/messages.js';
