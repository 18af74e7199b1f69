import { ProtocolViolationError } from '../errors.js';

/**
 * Decoding of the frontend messages that carry statement or portal names, and re-encoding them
 * with other names. Every message the engine receives has been checked here first: a message
 * whose fields do not add up is refused with 08P01 instead of reaching the engine.
 */

export const PARSE = 0x50; // P
export const BIND = 0x42; // B
export const DESCRIBE = 0x44; // D
export const CLOSE = 0x43; // C
export const EXECUTE = 0x45; // E
export const SYNC = 0x53; // S
export const FLUSH = 0x48; // H
export const QUERY = 0x51; // Q
export const FUNCTION_CALL = 0x46; // F
export const TERMINATE = 0x58; // X
export const COPY_DATA = 0x64; // d
export const COPY_DONE = 0x63; // c
export const COPY_FAIL = 0x66; // f
export const PASSWORD = 0x70; // p

/** Position just past the NUL that ends the string at `start`. */
export function cstringEnd(body: Buffer, start: number): number {
  const zero = body.indexOf(0, start);
  if (zero < 0) throw new ProtocolViolationError('invalid string in message');
  return zero + 1;
}

export function cstring(body: Buffer, start: number): string {
  return body.toString('utf8', start, cstringEnd(body, start) - 1);
}

function need(body: Buffer, offset: number, bytes: number): void {
  if (offset + bytes > body.length) throw new ProtocolViolationError('insufficient data left in message');
}

function expectEnd(body: Buffer, offset: number): void {
  if (offset !== body.length) throw new ProtocolViolationError('invalid message format');
}

export interface ParseMessage {
  name: string;
  /** Offsets of the SQL text in the body (without its NUL). */
  sqlStart: number;
  sqlEnd: number;
  /** Offset where the parameter types begin: everything after the name, from the SQL on, is kept. */
  restStart: number;
}

export function decodeParse(body: Buffer): ParseMessage {
  const nameEnd = cstringEnd(body, 0);
  const sqlEnd = cstringEnd(body, nameEnd);
  need(body, sqlEnd, 2);
  const types = body.readInt16BE(sqlEnd);
  if (types < 0) throw new ProtocolViolationError('invalid parameter count in Parse');
  expectEnd(body, sqlEnd + 2 + 4 * types);
  return {
    name: body.toString('utf8', 0, nameEnd - 1),
    sqlStart: nameEnd,
    sqlEnd: sqlEnd - 1,
    restStart: nameEnd,
  };
}

export interface BindMessage {
  portal: string;
  statement: string;
  restStart: number;
}

export function decodeBind(body: Buffer): BindMessage {
  const portalEnd = cstringEnd(body, 0);
  const statementEnd = cstringEnd(body, portalEnd);
  let offset = statementEnd;
  need(body, offset, 2);
  const formats = body.readInt16BE(offset);
  if (formats < 0) throw new ProtocolViolationError('invalid format count in Bind');
  offset += 2 + 2 * formats;
  need(body, offset, 2);
  const params = body.readInt16BE(offset);
  if (params < 0) throw new ProtocolViolationError('invalid parameter count in Bind');
  offset += 2;
  for (let i = 0; i < params; i++) {
    need(body, offset, 4);
    const length = body.readInt32BE(offset);
    offset += 4;
    if (length < -1) throw new ProtocolViolationError('invalid parameter length in Bind');
    if (length > 0) {
      need(body, offset, length);
      offset += length;
    }
  }
  need(body, offset, 2);
  const resultFormats = body.readInt16BE(offset);
  if (resultFormats < 0) throw new ProtocolViolationError('invalid result format count in Bind');
  expectEnd(body, offset + 2 + 2 * resultFormats);
  return {
    portal: body.toString('utf8', 0, portalEnd - 1),
    statement: body.toString('utf8', portalEnd, statementEnd - 1),
    restStart: statementEnd,
  };
}

/** Describe and Close: 'S' (statement) or 'P' (portal), then a name. */
export interface TargetMessage {
  kind: 'S' | 'P';
  name: string;
}

export function decodeTarget(body: Buffer): TargetMessage {
  need(body, 0, 1);
  const kind = body[0];
  if (kind !== 0x53 && kind !== 0x50) throw new ProtocolViolationError('invalid Describe/Close target');
  const end = cstringEnd(body, 1);
  expectEnd(body, end);
  return { kind: kind === 0x53 ? 'S' : 'P', name: body.toString('utf8', 1, end - 1) };
}

export interface ExecuteMessage {
  portal: string;
  maxRows: number;
}

export function decodeExecute(body: Buffer): ExecuteMessage {
  const end = cstringEnd(body, 0);
  need(body, end, 4);
  expectEnd(body, end + 4);
  return { portal: body.toString('utf8', 0, end - 1), maxRows: body.readInt32BE(end) };
}

/** Checks a Query message and returns the end of its SQL text (the NUL). */
export function decodeQuery(body: Buffer): number {
  const end = cstringEnd(body, 0);
  expectEnd(body, end);
  return end - 1;
}

export function checkFunctionCall(body: Buffer): void {
  let offset = 4;
  need(body, 0, 6);
  const formats = body.readInt16BE(offset);
  if (formats < 0) throw new ProtocolViolationError('invalid format count in FunctionCall');
  offset += 2 + 2 * formats;
  need(body, offset, 2);
  const args = body.readInt16BE(offset);
  if (args < 0) throw new ProtocolViolationError('invalid argument count in FunctionCall');
  offset += 2;
  for (let i = 0; i < args; i++) {
    need(body, offset, 4);
    const length = body.readInt32BE(offset);
    offset += 4;
    if (length < -1) throw new ProtocolViolationError('invalid argument length in FunctionCall');
    if (length > 0) {
      need(body, offset, length);
      offset += length;
    }
  }
  need(body, offset, 2);
  expectEnd(body, offset + 2);
}

export function checkEmpty(body: Buffer): void {
  expectEnd(body, 0);
}

/** A message of `type` whose body is `names` (each NUL-terminated) followed by `rest`. */
export function encodeWithNames(
  type: number,
  lead: Buffer | null,
  names: readonly string[],
  rest: Buffer,
): Buffer {
  let length = 4 + (lead?.length ?? 0) + rest.length;
  for (const name of names) length += Buffer.byteLength(name) + 1;
  const out = Buffer.allocUnsafe(1 + length);
  out[0] = type;
  out.writeInt32BE(length, 1);
  let offset = 5;
  if (lead) offset += lead.copy(out, offset);
  for (const name of names) {
    offset += out.write(name, offset, 'utf8');
    out[offset++] = 0;
  }
  rest.copy(out, offset);
  return out;
}

/**
 * The SQL text of a whole Query or Parse frame (type byte and length included), as bytes of the
 * frame; null for other messages. Frames reaching this were checked when they came in.
 */
export function statementText(frame: Buffer): Buffer | null {
  const type = frame[0];
  if (type !== 0x51 && type !== 0x50) return null;
  const start = type === 0x51 ? 5 : frame.indexOf(0, 5) + 1;
  const end = frame.indexOf(0, start);
  return start > 0 && end >= start ? frame.subarray(start, end) : null;
}
