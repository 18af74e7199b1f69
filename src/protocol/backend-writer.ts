/**
 * Backend messages the proxy writes itself (pg-protocol only serializes frontend messages).
 * Each function returns one complete message.
 */

/** Fields of an ErrorResponse or NoticeResponse, by their protocol letter. */
export interface ErrorFields {
  severity: 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE' | 'LOG';
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

function frame(type: string, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function cstring(value: string): Buffer {
  return Buffer.from(`${value.replaceAll('\0', '')}\0`, 'utf8');
}

function int32(value: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeInt32BE(value | 0);
  return out;
}

function fieldsBody(fields: ErrorFields): Buffer {
  const parts: Buffer[] = [];
  const add = (letter: string, value: string | undefined) => {
    if (value !== undefined) parts.push(Buffer.from(letter), cstring(value));
  };
  add('S', fields.severity);
  add('V', fields.severity);
  add('C', fields.code);
  add('M', fields.message);
  add('D', fields.detail);
  add('H', fields.hint);
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

export function errorResponse(fields: ErrorFields): Buffer {
  return frame('E', fieldsBody(fields));
}

export function noticeResponse(fields: ErrorFields): Buffer {
  return frame('N', fieldsBody(fields));
}

export type TransactionStatus = 'I' | 'T' | 'E';

const READY: Record<TransactionStatus, Buffer> = {
  I: Buffer.from([0x5a, 0, 0, 0, 5, 0x49]),
  T: Buffer.from([0x5a, 0, 0, 0, 5, 0x54]),
  E: Buffer.from([0x5a, 0, 0, 0, 5, 0x45]),
};

export function readyForQuery(status: TransactionStatus): Buffer {
  return READY[status];
}

export function authenticationMd5Password(salt: Buffer): Buffer {
  return frame('R', Buffer.concat([int32(5), salt]));
}

export function authenticationSasl(mechanisms: readonly string[]): Buffer {
  return frame('R', Buffer.concat([int32(10), ...mechanisms.map(cstring), Buffer.from([0])]));
}

export function authenticationSaslContinue(data: string): Buffer {
  return frame('R', Buffer.concat([int32(11), Buffer.from(data, 'utf8')]));
}

export function authenticationSaslFinal(data: string): Buffer {
  return frame('R', Buffer.concat([int32(12), Buffer.from(data, 'utf8')]));
}

export function parameterStatus(name: string, value: string): Buffer {
  return frame('S', Buffer.concat([cstring(name), cstring(value)]));
}

export function backendKeyData(processId: number, secretKey: number): Buffer {
  return frame('K', Buffer.concat([int32(processId), int32(secretKey)]));
}

export function commandComplete(tag: string): Buffer {
  return frame('C', cstring(tag));
}

/** CopyInResponse: overall format (0 text, 1 binary) and one format code per column. */
export function copyInResponse(binary: boolean, columns: number): Buffer {
  const body = Buffer.alloc(3 + 2 * columns);
  body[0] = binary ? 1 : 0;
  body.writeInt16BE(columns, 1);
  for (let i = 0; i < columns; i++) body.writeInt16BE(binary ? 1 : 0, 3 + 2 * i);
  return frame('G', body);
}

export function notificationResponse(processId: number, channel: string, payload: string): Buffer {
  return frame('A', Buffer.concat([int32(processId), cstring(channel), cstring(payload)]));
}

/** The newest minor protocol version served, and the protocol options (`_pq_.*`) not recognized. */
export function negotiateProtocolVersion(newestMinor: number, unrecognized: readonly string[]): Buffer {
  return frame(
    'v',
    Buffer.concat([int32(newestMinor), int32(unrecognized.length), ...unrecognized.map(cstring)]),
  );
}

/** Authentication succeeded (or was not needed). */
export const AUTHENTICATION_OK = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0]);

/** The single byte that answers SSLRequest and GSSENCRequest: not supported, go on in plain text. */
export const ENCRYPTION_REFUSED = Buffer.from('N');

/** Replies to extended-protocol messages the proxy answers itself (statements without parameters or rows). */
export const PARSE_COMPLETE = Buffer.from([0x31, 0, 0, 0, 4]);
export const BIND_COMPLETE = Buffer.from([0x32, 0, 0, 0, 4]);
export const CLOSE_COMPLETE = Buffer.from([0x33, 0, 0, 0, 4]);
export const NO_DATA = Buffer.from([0x6e, 0, 0, 0, 4]);
export const NO_PARAMETERS = Buffer.from([0x74, 0, 0, 0, 6, 0, 0]);
