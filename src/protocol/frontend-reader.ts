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
 * written again, so they stay valid after later pushes. Chunks are joined only once the message
 * they belong to is whole, so a large message costs one copy, however many chunks carry it.
 */
export class FrontendReader {
  private buffer: Buffer = Buffer.alloc(0);
  private offset = 0;
  /** Chunks received after `buffer`, not yet joined to it. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  private maxMessageBytes: number;

  /**
   * Until `authenticated()`, typed messages (a password, a SASL response) are held to the
   * startup limit: a client that has not logged in cannot make the server buffer much.
   */
  constructor(private readonly limits: FrontendLimits = DEFAULT_FRONTEND_LIMITS) {
    this.maxMessageBytes = Math.min(limits.maxStartupBytes, limits.maxMessageBytes);
  }

  /** The client logged in: typed messages may now be as large as `maxMessageBytes`. */
  authenticated(): void {
    this.maxMessageBytes = this.limits.maxMessageBytes;
  }

  push(chunk: Buffer): void {
    if (this.offset >= this.buffer.length && this.pending.length === 0) {
      this.buffer = chunk;
      this.offset = 0;
    } else {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
    }
  }

  /** Bytes received and not yet returned as a message. */
  get buffered(): number {
    return this.buffer.length - this.offset + this.pendingBytes;
  }

  /** The next untyped startup packet (int32 length, then the body), or null if incomplete. */
  nextStartup(): Buffer | null {
    if (!this.contiguous(4)) return null;
    const length = this.buffer.readInt32BE(this.offset);
    if (length < 8 || length > this.limits.maxStartupBytes) {
      throw new ProtocolViolationError(`invalid length of startup packet (${length})`);
    }
    if (!this.contiguous(length)) return null;
    const packet = this.buffer.subarray(this.offset + 4, this.offset + length);
    this.offset += length;
    return packet;
  }

  /** The next typed message, or null if it has not fully arrived. */
  next(): FrontendMessage | null {
    if (!this.contiguous(5)) return null;
    const start = this.offset;
    const type = this.buffer[start]!;
    const length = this.buffer.readInt32BE(start + 1);
    if (length < 4) throw new ProtocolViolationError(`invalid message length ${length}`);
    const limit = SMALL_TYPES.has(type)
      ? Math.min(SMALL_MESSAGE_LIMIT, this.maxMessageBytes)
      : this.maxMessageBytes;
    if (length > limit) {
      throw new ProtocolViolationError(
        `message of type '${printable(type)}' is ${length} bytes, over the limit of ${limit}`,
      );
    }
    if (!this.contiguous(length + 1)) return null;
    const from = this.offset;
    const end = from + 1 + length;
    this.offset = end;
    return {
      type,
      frame: this.buffer.subarray(from, end),
      body: this.buffer.subarray(from + 5, end),
    };
  }

  /** Whether `bytes` are available; joins the pending chunks into one buffer when they are. */
  private contiguous(bytes: number): boolean {
    const inBuffer = this.buffer.length - this.offset;
    if (inBuffer >= bytes) return true;
    if (inBuffer + this.pendingBytes < bytes) return false;
    this.buffer = Buffer.concat([this.buffer.subarray(this.offset), ...this.pending]);
    this.offset = 0;
    this.pending = [];
    this.pendingBytes = 0;
    return true;
  }
}

export function printable(type: number): string {
  return type >= 0x20 && type < 0x7f ? String.fromCharCode(type) : `0x${type.toString(16).padStart(2, '0')}`;
}
