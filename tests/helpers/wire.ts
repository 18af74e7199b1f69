import type { BackendMessage } from 'pg-protocol/dist/messages.js';
import { Parser } from 'pg-protocol/dist/parser.js';

/** Decodes raw backend bytes into pg-protocol messages. */
export function decodeBackend(bytes: Uint8Array): BackendMessage[] {
  const messages: BackendMessage[] = [];
  new Parser().parse(Buffer.from(bytes), (message) => messages.push(message));
  return messages;
}

/** The text fields of every DataRow in the response. */
export function dataRows(bytes: Uint8Array): unknown[][] {
  return decodeBackend(bytes)
    .filter((m) => m.name === 'dataRow')
    .map((m) => (m as unknown as { fields: unknown[] }).fields);
}

/** A DataRow message of text fields (null for SQL NULL), as the engine writes it. */
export function dataRowFrame(...fields: Array<string | null>): Buffer {
  const parts = fields.map((field) => {
    if (field === null) return Buffer.from([0xff, 0xff, 0xff, 0xff]);
    const length = Buffer.alloc(4);
    length.writeInt32BE(Buffer.byteLength(field));
    return Buffer.concat([length, Buffer.from(field)]);
  });
  const body = Buffer.concat([Buffer.from([0, fields.length]), ...parts]);
  const header = Buffer.from([0x44, 0, 0, 0, 0]);
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}
