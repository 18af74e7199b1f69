import type { TransactionStatus } from './backend-writer.js';

/** A NotificationResponse found in engine output, with where it sits so it can be cut out. */
export interface Notification {
  /** The notifying backend's process id, as the message gives it. */
  processId: number;
  channel: string;
  payload: string;
  start: number;
  end: number;
}

/** What the proxy needs to know about one unit's engine output; everything else passes through. */
export interface BackendSummary {
  /** Status of the last ReadyForQuery, or null when the output has none. */
  status: TransactionStatus | null;
  /** Where that status byte sits in the output, so it can be rewritten. */
  statusAt: number | null;
  /**
   * ReadyForQuery messages before the last one. A unit the proxy sends ends in at most one Sync
   * or Query, so PostgreSQL would send at most one; the engine can add another after an error.
   */
  earlierReady: Array<{ start: number; end: number }>;
  errors: number;
  /** SQLSTATE of the first ErrorResponse, if any. */
  firstErrorCode: string | null;
  notifications: Notification[];
  parameterChanges: Array<[string, string]>;
  /** Tag of the last CommandComplete ("COMMIT", "ROLLBACK", "SELECT 1", ...). */
  lastCommandTag: string | null;
  /** The first field of the first DataRow, as text (null when there is none, or it is NULL). */
  firstValue: string | null;
  /** Set when the output is not a sequence of whole messages: the engine is not well. */
  malformed: boolean;
}

const Z = 0x5a;
const A = 0x41;
const S = 0x53;
const E = 0x45;
const C = 0x43;
const D = 0x44;

/**
 * Walks the message headers of engine output. Only ReadyForQuery, ErrorResponse,
 * NotificationResponse, ParameterStatus and CommandComplete are looked into.
 */
export function scanBackend(output: Uint8Array): BackendSummary {
  const summary: BackendSummary = {
    status: null,
    statusAt: null,
    earlierReady: [],
    errors: 0,
    firstErrorCode: null,
    notifications: [],
    parameterChanges: [],
    lastCommandTag: null,
    firstValue: null,
    malformed: false,
  };
  let rows = 0;
  const view = new DataView(output.buffer, output.byteOffset, output.byteLength);
  let offset = 0;
  while (offset < output.length) {
    if (output.length - offset < 5) {
      summary.malformed = true;
      break;
    }
    const type = output[offset]!;
    const length = view.getInt32(offset + 1);
    const end = offset + 1 + length;
    if (length < 4 || end > output.length) {
      summary.malformed = true;
      break;
    }
    const body = offset + 5;
    switch (type) {
      case Z:
        if (summary.statusAt !== null)
          summary.earlierReady.push({ start: summary.statusAt - 5, end: summary.statusAt + 1 });
        summary.status = String.fromCharCode(output[body]!) as TransactionStatus;
        summary.statusAt = body;
        break;
      case E:
        summary.errors++;
        summary.firstErrorCode ??= errorField(output, body, end, 0x43 /* C */);
        break;
      case D:
        if (rows++ === 0 && length >= 10 && view.getInt16(body) > 0) {
          const size = view.getInt32(body + 2);
          if (size >= 0 && body + 6 + size <= end) {
            summary.firstValue = Buffer.from(output.buffer, output.byteOffset + body + 6, size).toString(
              'utf8',
            );
          }
        }
        break;
      case C:
        summary.lastCommandTag = cstringAt(output, body, end)[0];
        break;
      case A:
        summary.notifications.push(notificationAt(output, view, offset, end));
        break;
      case S: {
        const [name, next] = cstringAt(output, body, end);
        const [value] = cstringAt(output, next, end);
        summary.parameterChanges.push([name, value]);
        break;
      }
    }
    offset = end;
  }
  return summary;
}

/** The output without the given byte ranges (sorted, non-overlapping). */
export function withoutRanges(
  output: Uint8Array,
  ranges: ReadonlyArray<{ start: number; end: number }>,
): Buffer {
  const parts: Uint8Array[] = [];
  let from = 0;
  for (const range of ranges) {
    parts.push(output.subarray(from, range.start));
    from = range.end;
  }
  parts.push(output.subarray(from));
  return Buffer.concat(parts);
}

/** The messages of engine output whose type is not in `drop`. */
export function withoutTypes(output: Uint8Array, drop: ReadonlySet<number>): Buffer {
  const view = new DataView(output.buffer, output.byteOffset, output.byteLength);
  const parts: Uint8Array[] = [];
  let offset = 0;
  while (offset + 5 <= output.length) {
    const end = offset + 1 + view.getInt32(offset + 1);
    if (!drop.has(output[offset]!)) parts.push(output.subarray(offset, end));
    offset = end;
  }
  return Buffer.concat(parts);
}

function cstringAt(bytes: Uint8Array, start: number, end: number): [string, number] {
  let zero = start;
  while (zero < end && bytes[zero] !== 0) zero++;
  return [Buffer.from(bytes.buffer, bytes.byteOffset + start, zero - start).toString('utf8'), zero + 1];
}

/** A field of one ErrorResponse or NoticeResponse message (header included), by its letter. */
export function errorFieldOf(message: Uint8Array, letter: string): string | null {
  return errorField(message, 5, message.length, letter.charCodeAt(0));
}

function errorField(bytes: Uint8Array, start: number, end: number, field: number): string | null {
  let offset = start;
  while (offset < end && bytes[offset] !== 0) {
    const letter = bytes[offset]!;
    const [value, next] = cstringAt(bytes, offset + 1, end);
    if (letter === field) return value;
    offset = next;
  }
  return null;
}

/**
 * The NotificationResponse messages `output` starts with, and the rest of it (see
 * withReleasedNotifications: how the engine hands over what a test's transaction released).
 */
export function leadingNotifications(output: Uint8Array): {
  notifications: Notification[];
  rest: Uint8Array;
} {
  const view = new DataView(output.buffer, output.byteOffset, output.byteLength);
  const notifications: Notification[] = [];
  let offset = 0;
  while (offset + 5 <= output.length && output[offset] === A) {
    const end = offset + 1 + view.getInt32(offset + 1);
    if (end > output.length || end < offset + 13) break;
    notifications.push(notificationAt(output, view, offset, end));
    offset = end;
  }
  return { notifications, rest: output.subarray(offset) };
}

/** The NotificationResponse from `start` to `end`: process id, channel, payload. */
function notificationAt(output: Uint8Array, view: DataView, start: number, end: number): Notification {
  const body = start + 5;
  const [channel, next] = cstringAt(output, body + 4, end);
  const [payload] = cstringAt(output, next, end);
  return { processId: view.getInt32(body), channel, payload, start, end };
}
