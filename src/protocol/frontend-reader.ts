import { ProtocolViolationError } from '../errors.js';

/** Sizes above which a client message is refused rather than buffered. */
export interface FrontendLimits {
  /** The largest startup packet (SSLRequest, StartupMessage, CancelRequest) accepted. */
  maxStartupBytes: number;
  /** The largest typed message (Query, Parse, Bind, CopyData, ...) accepted. */
  maxMessageBytes: number;
}

export const DEFAULT_FRONTEND_LIMITS: FrontendLimits = {
  maxStartupBytes: 10_000,
  maxMessageBytes: 256 * 1024 * 1024,
};

/**
 * Postgres reads these types with PQ_SMALL_MESSAGE_LIMIT; a bigger one makes the backend drop
 * the session (in the engine: exit), so they are refused before they get there.
 */
const SMALL_MESSAGE_LIMIT = 10_000;
const SMALL_TYPES = new Set([0x44 /* D */, 0x45 /* E */, 0x43 /* C */, 0x48 /* H */, 0x53 /* S */]);

/** One typed frontend message: `frame` is the whole message, `body` the bytes after the header. */
export interface FrontendMessage {
  type: number;
  frame: Buffer;
  body: Buffer;
}

/**
 * Cuts a client's byte stream into messages. Views returned point into buffers that are never
 * written again, so they stay valid after later pushes.
 */
export class FrontendReader {
  private buffer: Buffer = Buffer.alloc(0);
  private offset = 0;

  constructor(private readonly limits: FrontendLimits = DEFAULT_FRONTEND_LIMITS) {}

  push(chunk: Buffer): void {
    if (this.offset >= this.buffer.length) {
      this.buffer = chunk;
    } else {
      this.buffer = Buffer.concat([this.buffer.subarray(this.offset), chunk]);
    }
    this.offset = 0;
  }

  /** Bytes received and not yet returned as a message. */
  get buffered(): number {
    return this.buffer.length - this.offset;
  }

  /** The next untyped startup packet (int32 length, then the body), or null if incomplete. */
  nextStartup(): Buffer | null {
    const available = this.buffer.length - this.offset;
    if (available < 4) return null;
    const length = this.buffer.readInt32BE(this.offset);
    if (length < 8 || length > this.limits.maxStartupBytes) {
      throw new ProtocolViolationError(`invalid length of startup packet (${length})`);
    }
    if (available < length) return null;
    const packet = this.buffer.subarray(this.offset + 4, this.offset + length);
    this.offset += length;
    return packet;
  }

  /** The next typed message, or null if it has not fully arrived. */
  next(): FrontendMessage | null {
    const available = this.buffer.length - this.offset;
    if (available < 5) return null;
    const start = this.offset;
    const type = this.buffer[start]!;
    const length = this.buffer.readInt32BE(start + 1);
    if (length < 4) throw new ProtocolViolationError(`invalid message length ${length}`);
    const limit = SMALL_TYPES.has(type) ? SMALL_MESSAGE_LIMIT : this.limits.maxMessageBytes;
    if (length > limit) {
      throw new ProtocolViolationError(
        `message of type '${printable(type)}' is ${length} bytes, over the limit of ${limit}`,
      );
    }
    if (available < length + 1) return null;
    const end = start + 1 + length;
    this.offset = end;
    return {
      type,
      frame: this.buffer.subarray(start, end),
      body: this.buffer.subarray(start + 5, end),
    };
  }
}

export function printable(type: number): string {
  return type >= 0x20 && type < 0x7f ? String.fromCharCode(type) : `0x${type.toString(16).padStart(2, '0')}`;
}
