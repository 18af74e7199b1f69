import type { DatabaseError, DataRowMessage } from 'pg-protocol/dist/messages.js';
import { Parser } from 'pg-protocol/dist/parser.js';

/** The text rows of engine output and the first error in it, for the proxy's own queries. */
export function readRows(output: Uint8Array): {
  rows: Array<Array<string | null>>;
  error: DatabaseError | null;
} {
  const rows: Array<Array<string | null>> = [];
  let error: DatabaseError | null = null;
  new Parser().parse(Buffer.from(output.buffer, output.byteOffset, output.byteLength), (message) => {
    if (message.name === 'dataRow') rows.push((message as DataRowMessage).fields);
    else if (message.name === 'error') error ??= message as DatabaseError;
  });
  return { rows, error };
}
