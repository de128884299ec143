import { connect, type Socket } from 'node:net';

/** A socket that collects everything the server sends; waits on data events, never sleeps. */
export class RawClient {
  private received = Buffer.alloc(0);
  private ended = false;
  private waiter: (() => void) | null = null;
  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.received = Buffer.concat([this.received, d]);
      this.waiter?.();
    });
    socket.on('close', () => {
      this.ended = true;
      this.waiter?.();
    });
    socket.on('error', () => {});
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  get text(): string {
    return this.received.toString('latin1');
  }

  /** Resolves with all text received once it has at least `bytes` bytes. */
  async readBytes(bytes: number): Promise<string> {
    while (this.received.length < bytes) {
      if (this.ended) throw new Error(`closed after ${this.received.length} of ${bytes} bytes: ${JSON.stringify(this.text)}`);
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
    return this.text;
  }

  /** Resolves with all text received once the server has closed the connection. */
  async readUntilClosed(): Promise<string> {
    while (!this.ended) await new Promise<void>((resolve) => (this.waiter = resolve));
    return this.text;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A command as a RESP array of bulk strings. */
export function encodeCommand(...args: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a) : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}
