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
