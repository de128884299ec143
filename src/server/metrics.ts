/** What the protocol servers report per request; the admin layer backs it with prom-client. */
export type Protocol = 'resp' | 'grpc';

export interface RequestMetrics {
  /** Records one request of `command` that took `seconds`; `errorCode` is set when it failed. */
  observe(protocol: Protocol, command: string, seconds: number, errorCode?: string): void;
  /** Counts a connection opened (+1) or closed (-1). */
  connections(protocol: Protocol, delta: number): void;
  /** Counts a client disconnected by the server, by reason (e.g. 'outputBufferBytesMax'). */
  disconnected(protocol: Protocol, reason: string): void;
}

/** A RequestMetrics that records nothing (for tools and tests that do not read metrics). */
export const noMetrics: RequestMetrics = {
  observe() {},
  connections() {},
  disconnected() {},
};
