/** Loads the RawKV service definition from the .proto file shipped with the package. */
import { fileURLToPath } from 'node:url';
import type { ServiceDefinition } from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/**
 * Path of rawkv.proto. This module runs compiled from dist/src/common/grpc/, and the proto
 * sits at proto/ragkv/v1/ under the package root (package.json ships it).
 */
export const rawKvProtoPath = fileURLToPath(new URL('../../../../proto/ragkv/v1/rawkv.proto', import.meta.url));

/** Decoding options; messages.ts describes the shapes they produce. Clients must use the same. */
export const protoLoaderOptions: protoLoader.Options = Object.freeze({
  keepCase: true,
  // Every 64-bit field holds a size, count or duration far below 2^53.
  longs: Number,
  enums: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
});

/** Fully qualified service name, as in the .proto. */
export const rawKvServiceName = 'ragkv.v1.RawKV';

/** Reads the .proto and returns the RawKV service definition for `Server.addService`. */
export function loadRawKvService(): ServiceDefinition {
  const packageDefinition = protoLoader.loadSync(rawKvProtoPath, protoLoaderOptions);
  const service = packageDefinition[rawKvServiceName];
  if (service === undefined || 'format' in service || 'type' in service) {
    throw new Error(`${rawKvProtoPath} does not define service ${rawKvServiceName}`);
  }
  return service as ServiceDefinition;
}
