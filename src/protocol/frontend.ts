import { serialize } from 'pg-protocol';
import { InvalidInputError } from '../errors.js';

/** What execInteractive and poke take: SQL for one simple Query, or raw frontend messages. */
export type PokeInput = string | Uint8Array;

const MAX_MESSAGE_LENGTH = 1 << 30;

/** Turns input into frontend message bytes, refusing bytes that are not whole messages. */
export function toFrontendBytes(input: PokeInput): Uint8Array {
  if (typeof input === 'string') {
    if (input.includes('\0')) throw new InvalidInputError('SQL text cannot contain a NUL character.');
    return new Uint8Array(serialize.query(input));
  }
  if (!(input instanceof Uint8Array)) throw new InvalidInputError('Input must be a string or a Uint8Array.');
  assertWholeMessages(input);
  return input;
}

/**
 * Checks that bytes are a sequence of complete, typed frontend messages (type byte + int32 length).
 * A startup packet or a cut-off message would leave the engine waiting for bytes that never come.
 */
export function assertWholeMessages(bytes: Uint8Array): void {
  if (bytes.length === 0) throw new InvalidInputError('No frontend messages were given.');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  while (offset < bytes.length) {
    if (bytes.length - offset < 5) {
      throw new InvalidInputError(`Truncated frontend message at byte ${offset}: a header needs 5 bytes.`);
    }
    const type = bytes[offset]!;
    const length = view.getInt32(offset + 1);
    if (type < 0x41 || type > 0x7a) {
      throw new InvalidInputError(
        `Byte ${offset} is not a frontend message type (0x${type.toString(16)}); ` +
          'send messages after startup, the runtime performs the startup handshake itself.',
      );
    }
    if (length < 4 || length > MAX_MESSAGE_LENGTH) {
      throw new InvalidInputError(
        `Frontend message '${String.fromCharCode(type)}' has an invalid length ${length}.`,
      );
    }
    if (offset + 1 + length > bytes.length) {
      throw new InvalidInputError(
        `Frontend message '${String.fromCharCode(type)}' at byte ${offset} is cut off: it declares ${length} bytes.`,
      );
    }
    offset += 1 + length;
  }
}
