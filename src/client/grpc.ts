/**
 * A small Node client for the gRPC `ragkv.v1.RawKV` service: loads the .proto shipped with
 * the package and exposes each call as a promise.
 *
 * @example
 * const client = createRawKvClient('127.0.0.1:50051');
 * await client.rawPut({ key: Buffer.from('doc:1'), value: Buffer.from('hello') });
 * const { value, not_found } = await client.rawGet({ key: Buffer.from('doc:1') });
 * client.close();
 *
 * A failed call rejects with a grpc-js `ServiceError`: `.code` is the gRPC status
 * (`status.INVALID_ARGUMENT`, ...) and `.details` the server's message.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { defaultLimits } from '../common/limits.js';
import { mergeSessionTokens } from '../common/session-token.js';
import { rawKvMethods, type RawKvMessages, type RawKvMethod } from '../common/grpc/messages.js';
import { protoLoaderOptions, rawKvProtoPath } from '../common/grpc/proto.js';

export type * from '../common/grpc/messages.js';
export { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';

/** Path of rawkv.proto, for other tools. */
export { rawKvProtoPath };

/**
 * What a caller may send: every field optional (proto3 defaults), at every depth (pairs,
 * items, filter), and bytes as any Uint8Array.
 */
type Input<T> = T extends Buffer
  ? Uint8Array
  : T extends readonly (infer E)[]
    ? Input<E>[]
    : T extends object
      ? { [K in keyof T]?: Input<T[K]> }
      : T;

/** `RawGet` -> `rawGet`. */
type ClientMethodName<M extends string> = Uncapitalize<M>;

export type RawKvCalls = {
  [M in RawKvMethod as ClientMethodName<M>]: (
    request: Input<RawKvMessages[M]['request']>,
    options?: grpc.CallOptions,
  ) => Promise<Omit<RawKvMessages[M]['response'], 'session_token'> & { session_token?: Buffer }>;
};

export interface RawKvClient extends RawKvCalls {
  /** The underlying grpc-js client (for channel state, interceptors, ...). */
  readonly grpcClient: grpc.Client;
  /** Closes the channel. */
  close(): void;
}

export interface RawKvClientOptions {
  /** Default: insecure (plaintext). */
  credentials?: grpc.ChannelCredentials;
  /** Largest message sent or received; default the server's default `grpcMessageBytesMax`. */
  messageBytesMax?: number;
  /** Extra grpc-js channel options. */
  channelOptions?: grpc.ChannelOptions;
  /**
   * Keep one session across this client's calls (default true): each call sends the token of
   * the previous reply, so the client reads its own writes and never goes back, whichever
   * member answers. The token is then taken out of the replies. With false, every call is
   * on its own unless the caller passes `session_token` itself (and the replies keep theirs).
   */
  session?: boolean;
  /** Largest session token kept when merging concurrent replies' tokens; default the server's default `sessionTokenBytesMax` (set it to the server's if that was changed). */
  sessionTokenBytesMax?: number;
}


const methodNames: readonly RawKvMethod[] = rawKvMethods;

type UnaryMethod = (
  request: unknown,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: unknown) => void,
) => grpc.ClientUnaryCall;

let clientConstructor: grpc.ServiceClientConstructor | null = null;

function rawKvClientConstructor(): grpc.ServiceClientConstructor {
  if (clientConstructor === null) {
    const packageDefinition = protoLoader.loadSync(rawKvProtoPath, protoLoaderOptions);
    const loaded = grpc.loadPackageDefinition(packageDefinition) as unknown as {
      ragkv: { v1: { RawKV: grpc.ServiceClientConstructor } };
    };
    clientConstructor = loaded.ragkv.v1.RawKV;
  }
  return clientConstructor;
}

/** Connects to a ragkv gRPC endpoint (`host:port`); the channel opens lazily on the first call. */
export function createRawKvClient(address: string, options: RawKvClientOptions = {}): RawKvClient {
  const messageBytesMax = options.messageBytesMax ?? defaultLimits.grpcMessageBytesMax;
  const Constructor = rawKvClientConstructor();
  const grpcClient = new Constructor(address, options.credentials ?? grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': messageBytesMax,
    'grpc.max_send_message_length': messageBytesMax,
    ...options.channelOptions,
  });
  const calls: Record<string, unknown> = {};
  const keepSession = options.session ?? true;
  const tokenBytesMax = options.sessionTokenBytesMax ?? defaultLimits.sessionTokenBytesMax;
  let token: Buffer = Buffer.alloc(0);
  for (const method of methodNames) {
    const invoke = (grpcClient as unknown as Record<string, UnaryMethod>)[method]!.bind(grpcClient);
    calls[method[0]!.toLowerCase() + method.slice(1)] = (request: { session_token?: Uint8Array }, callOptions: grpc.CallOptions = {}) =>
      new Promise((resolve, reject) => {
        const ours = keepSession && request.session_token === undefined;
        const sentToken = token;
        invoke(ours ? { ...request, session_token: sentToken } : request, callOptions, (error, response) => {
          if (error) return reject(error);
          const r = response as { session_token?: Buffer };
          if (ours && r.session_token && r.session_token.length > 0) {
            // The reply's token is the one sent plus this call's keys: it replaces the client's
            // unless another reply came back meanwhile (concurrent calls); then this call's
            // keys are added to the client's token.
            // A copy: the reply's token is a view into the whole reply message.
            const reply = Buffer.from(r.session_token);
            token = token === sentToken ? reply : mergeSessionTokens(token, reply, sentToken, tokenBytesMax);
          }
          if (keepSession) delete r.session_token;
          resolve(r);
        });
      });
  }
  return Object.assign(calls as RawKvCalls, {
    grpcClient,
    close: () => grpcClient.close(),
  });
}
