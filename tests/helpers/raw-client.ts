import net from 'node:net';
import { serialize } from 'pg-protocol';
import type { BackendMessage } from 'pg-protocol/dist/messages.js';
import { Parser } from 'pg-protocol/dist/parser.js';

/** Any backend message as pg-protocol parses it, with the fields tests look at. */
export type Message = BackendMessage & {
  code?: string;
  severity?: string;
  message?: string;
  status?: string;
  parameterName?: string;
  parameterValue?: string;
  processID?: number;
  secretKey?: number;
  fields?: unknown[];
  channel?: string;
  payload?: string;
  text?: string;
};

/** A wire-level client for tests that must send what real drivers never send. */
export class RawClient {
  readonly messages: Message[] = [];
  private readonly parser = new Parser();
  private raw = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.raw = Buffer.concat([this.raw, chunk]);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Connects and completes a trust startup. */
  static async ready(port: number, params: Record<string, string> = {}): Promise<RawClient> {
    const client = await RawClient.connect(port);
    client.send(serialize.startup({ user: 'postgres', database: 'postgres', ...params }));
    await client.untilReady();
    return client;
  }

  send(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** The next raw bytes, for the one-byte answer to SSLRequest. */
  async takeBytes(count: number, timeoutMs = 5_000): Promise<Buffer> {
    await this.until(() => this.raw.length >= count || this.closed, timeoutMs);
    const bytes = this.raw.subarray(0, count);
    this.raw = this.raw.subarray(count);
    return bytes;
  }

  /** Parses everything received so far into `messages`. */
  private drain(): void {
    if (this.raw.length === 0) return;
    const raw = this.raw;
    this.raw = Buffer.alloc(0);
    this.parser.parse(raw, (message) => this.messages.push(message as Message));
  }

  /** Waits for the next ReadyForQuery and returns the messages up to and including it. */
  async untilReady(timeoutMs = 10_000): Promise<Message[]> {
    let found = -1;
    await this.until(() => {
      this.drain();
      found = this.messages.findIndex((message) => message.name === 'readyForQuery');
      return found >= 0;
    }, timeoutMs);
    return this.messages.splice(0, found + 1);
  }

  /** Waits until the server closes the connection; returns all messages received. */
  async untilClosed(timeoutMs = 10_000): Promise<Message[]> {
    await this.until(() => this.closed, timeoutMs);
    this.drain();
    return this.messages.splice(0);
  }

  /** Waits for a message matching `predicate`. */
  async untilMessage(predicate: (message: Message) => boolean, timeoutMs = 10_000): Promise<Message> {
    let found: Message | undefined;
    await this.until(() => {
      this.drain();
      found = this.messages.find(predicate);
      return found !== undefined;
    }, timeoutMs);
    return found!;
  }

  /** Waits until everything received so far satisfies `condition`, then takes all of it. */
  async untilAll(condition: (messages: Message[]) => boolean, timeoutMs = 10_000): Promise<Message[]> {
    await this.until(() => {
      this.drain();
      return condition(this.messages);
    }, timeoutMs);
    return this.messages.splice(0);
  }

  end(): void {
    this.socket.end(serialize.end());
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  private async until(condition: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (this.closed && !condition()) {
        this.drain();
        if (condition()) return;
        throw new Error(`connection closed; messages: ${JSON.stringify(this.messages.map((m) => m.name))}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for the server');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

/** A startup packet with any protocol version code. */
export function startupPacket(version: number, params: Record<string, string>): Buffer {
  const body = Buffer.concat([
    ...Object.entries(params).flatMap(([key, value]) => [Buffer.from(`${key}\0`), Buffer.from(`${value}\0`)]),
    Buffer.from([0]),
  ]);
  const packet = Buffer.alloc(8 + body.length);
  packet.writeInt32BE(packet.length, 0);
  packet.writeInt32BE(version, 4);
  body.copy(packet, 8);
  return packet;
}
