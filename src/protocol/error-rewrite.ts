const ERROR_RESPONSE = 0x45;

/**
 * Backend output with the text of each ErrorResponse's fields passed through `rewrite` (every
 * other message, and every field's letter, as they were); the output itself when nothing changed.
 */
export function rewriteErrors(
  output: Uint8Array,
  rewrite: (value: string, letter: string) => string,
): Uint8Array {
  const view = new DataView(output.buffer, output.byteOffset, output.byteLength);
  const parts: Uint8Array[] = [];
  let changed = false;
  let offset = 0;
  while (offset + 5 <= output.length) {
    const end = offset + 1 + view.getInt32(offset + 1);
    const message = output.subarray(offset, end);
    const rewritten = output[offset] === ERROR_RESPONSE ? rewriteFields(message, rewrite) : null;
    parts.push(rewritten ?? message);
    changed ||= rewritten !== null;
    offset = end;
  }
  return changed ? Buffer.concat(parts) : output;
}

/** The ErrorResponse `message` with its fields rewritten; null when no field changed. */
function rewriteFields(
  message: Uint8Array,
  rewrite: (value: string, letter: string) => string,
): Buffer | null {
  const bytes = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const fields: Buffer[] = [];
  let changed = false;
  let offset = 5;
  while (offset < bytes.length && bytes[offset] !== 0) {
    const letter = String.fromCharCode(bytes[offset]!);
    const zero = bytes.indexOf(0, offset + 1);
    const value = bytes.toString('utf8', offset + 1, zero);
    const next = rewrite(value, letter);
    changed ||= next !== value;
    fields.push(Buffer.from(letter, 'latin1'), Buffer.from(`${next.replaceAll('\0', '')}\0`, 'utf8'));
    offset = zero + 1;
  }
  if (!changed) return null;
  const body = Buffer.concat([...fields, Buffer.from([0])]);
  const header = Buffer.from([ERROR_RESPONSE, 0, 0, 0, 0]);
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}
