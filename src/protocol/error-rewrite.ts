const ERROR_RESPONSE = 0x45;

/** One field of an ErrorResponse: its protocol letter and its text. */
export type ErrorField = [letter: string, value: string];

/**
 * Backend output with each ErrorResponse's fields passed through `rewrite`, which returns the
 * fields to send instead, or null to keep the message as it was; every other message as it was.
 * The output itself when nothing changed.
 */
export function rewriteErrorFields(
  output: Uint8Array,
  rewrite: (fields: ErrorField[]) => ErrorField[] | null,
): Uint8Array {
  const view = new DataView(output.buffer, output.byteOffset, output.byteLength);
  const parts: Uint8Array[] = [];
  let changed = false;
  let offset = 0;
  while (offset + 5 <= output.length) {
    const end = offset + 1 + view.getInt32(offset + 1);
    const message = output.subarray(offset, end);
    const fields = output[offset] === ERROR_RESPONSE ? rewrite(fieldsOf(message)) : null;
    parts.push(fields ? errorMessage(fields) : message);
    changed ||= fields !== null;
    offset = end;
  }
  return changed ? Buffer.concat(parts) : output;
}

/** The same, field by field: `rewrite` returns each field's new text. */
export function rewriteErrors(
  output: Uint8Array,
  rewrite: (value: string, letter: string) => string,
): Uint8Array {
  return rewriteErrorFields(output, (fields) => {
    const rewritten = fields.map(([letter, value]): ErrorField => [letter, rewrite(value, letter)]);
    return rewritten.some(([, value], at) => value !== fields[at]![1]) ? rewritten : null;
  });
}

function fieldsOf(message: Uint8Array): ErrorField[] {
  const bytes = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const fields: ErrorField[] = [];
  let offset = 5;
  while (offset < bytes.length && bytes[offset] !== 0) {
    const zero = bytes.indexOf(0, offset + 1);
    fields.push([String.fromCharCode(bytes[offset]!), bytes.toString('utf8', offset + 1, zero)]);
    offset = zero + 1;
  }
  return fields;
}

function errorMessage(fields: ErrorField[]): Buffer {
  const body = Buffer.concat([
    ...fields.flatMap(([letter, value]) => [
      Buffer.from(letter, 'latin1'),
      Buffer.from(`${value.replaceAll('\0', '')}\0`, 'utf8'),
    ]),
    Buffer.from([0]),
  ]);
  const header = Buffer.from([ERROR_RESPONSE, 0, 0, 0, 0]);
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}
