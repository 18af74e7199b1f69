/**
 * A hex dump of wire bytes, one row per `width` bytes: the prefix, the offset, the bytes in hex
 * and the printable ASCII. `hexc(bytes, '<-', 16)` is how the showcase prints a backend response.
 */
export function hexc(bytes: Uint8Array, prefix = '', width = 16): string {
  if (!Number.isInteger(width) || width < 1)
    throw new RangeError(`hexc width must be a positive integer, got ${width}`);
  const rows: string[] = [];
  for (let offset = 0; offset < bytes.length; offset += width) {
    const row = bytes.subarray(offset, offset + width);
    const hex = Array.from(row, (byte) => byte.toString(16).padStart(2, '0')).join(' ');
    const ascii = Array.from(row, (byte) =>
      byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : '.',
    ).join('');
    const lead = prefix ? `${prefix} ` : '';
    rows.push(`${lead}${offset.toString(16).padStart(8, '0')}  ${hex.padEnd(width * 3 - 1)}  |${ascii}|`);
  }
  return rows.join('\n');
}
