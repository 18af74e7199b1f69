/**
 * The WebAssembly linear memory side of an engine snapshot (see engine-snapshot.ts).
 *
 * The module declares 128 MB of memory; a booted engine's heap ends near 40 MB and nothing above
 * the heap's end (the sbrk pointer) is ever written. Reading untouched memory is costly (the OS
 * maps each page on first read: ~400 ms and ~90 MB of RSS for the untouched part), so the
 * snapshot covers memory up to the heap's end only, found once per engine (locateHeapEnd).
 * A restore compares chunk by chunk and copies back only the chunks that differ.
 */

const CHUNK = 256 * 1024;
const ZERO_CHUNK = Buffer.alloc(CHUNK);

export interface MemoryImage {
  /** Bytes covered: whole chunks up to the heap's end when the image was taken. */
  readonly byteLength: number;
  /** One entry per chunk: its bytes, or null when the chunk was all zero. */
  readonly chunks: ReadonlyArray<Buffer | null>;
}

/** Copies memory below `limit` (rounded up to whole chunks). */
export function captureMemory(memory: ArrayBuffer, limit: number): MemoryImage {
  const live = Buffer.from(memory, 0, coveredBytes(memory, limit));
  const chunks: Array<Buffer | null> = [];
  for (let offset = 0; offset < live.length; offset += CHUNK) {
    const chunk = live.subarray(offset, offset + CHUNK);
    chunks.push(chunk.equals(ZERO_CHUNK.subarray(0, chunk.length)) ? null : Buffer.from(chunk));
  }
  return { byteLength: live.length, chunks };
}

/**
 * Puts the image back into memory below `limit` and returns the number of bytes copied. Memory
 * above the image but below `limit` (the heap has grown since) is zeroed, as it was when new.
 */
export function restoreMemory(memory: ArrayBuffer, image: MemoryImage, limit: number): number {
  const live = Buffer.from(memory, 0, coveredBytes(memory, Math.max(limit, image.byteLength)));
  let copied = 0;
  for (let index = 0; index * CHUNK < live.length; index++) {
    const offset = index * CHUNK;
    const current = live.subarray(offset, offset + CHUNK);
    const expected = expectedChunk(image, index, current.length);
    if (current.equals(expected)) continue;
    current.set(expected);
    copied += current.length;
  }
  return copied;
}

function coveredBytes(memory: ArrayBuffer, limit: number): number {
  return Math.min(memory.byteLength, Math.ceil(limit / CHUNK) * CHUNK);
}

function expectedChunk(image: MemoryImage, index: number, length: number): Buffer {
  const saved = index * CHUNK < image.byteLength ? image.chunks[index] : null;
  if (!saved) return ZERO_CHUNK.subarray(0, length);
  if (saved.length === length) return saved;
  return Buffer.concat([saved, ZERO_CHUNK.subarray(0, length - saved.length)]);
}

export interface HeapAllocator {
  malloc(size: number): number;
  free(pointer: number): void;
}

// Growing sizes: the first one larger than the free space at the top of the heap makes the
// allocator extend the heap, and grows it by less than that size (it keeps the extension).
const PROBE_SIZES = [256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20];
/** The allocator's top chunk ends this close below the heap's end after an extension. */
const TOP_TO_END = 1 << 20;
const PROBE_CHUNK = 64 * 1024;

/**
 * Finds where Emscripten keeps the heap's end (its sbrk pointer, a static the module does not
 * export) by watching which words below the heap move past a block the allocator has to extend
 * the heap for: the allocator's top-chunk pointer, and above it, the heap's end. Done at an idle
 * point, before a snapshot; the blocks are freed again. Returns undefined when nothing behaves
 * like that (a snapshot then covers all of memory).
 */
export function locateHeapEnd(
  memory: () => ArrayBuffer,
  allocator: HeapAllocator,
  heapStart: number,
): number | undefined {
  const words = heapStart >>> 2;
  for (const size of PROBE_SIZES) {
    const before = Buffer.from(new Uint8Array(memory(), 0, words * 4));
    const block = allocator.malloc(size);
    if (!block) return undefined;
    try {
      const after = Buffer.from(memory(), 0, words * 4);
      const memoryEnd = memory().byteLength;
      const moved: Array<{ address: number; value: number }> = [];
      // Compare natively in chunks; only the few chunks that changed are read word by word.
      for (let offset = 0; offset < after.length; offset += PROBE_CHUNK) {
        const end = Math.min(offset + PROBE_CHUNK, after.length);
        if (after.subarray(offset, end).equals(before.subarray(offset, end))) continue;
        for (let address = offset; address < end; address += 4) {
          const value = after.readUInt32LE(address);
          if (value !== before.readUInt32LE(address) && value >= block + size && value <= memoryEnd) {
            moved.push({ address, value });
          }
        }
      }
      // Only the top-chunk pointer moved: the block came out of free space, try a larger one.
      if (moved.length < 2) continue;
      moved.sort((a, b) => b.value - a.value);
      const [end, top] = moved as [{ address: number; value: number }, { value: number }];
      return moved.length === 2 && end.value - top.value < TOP_TO_END ? end.address : undefined;
    } finally {
      allocator.free(block);
    }
  }
  return undefined;
}

/** The heap's end read from the located word, or undefined if the value cannot be one. */
export function heapEnd(memory: ArrayBuffer, address: number, heapStart: number): number | undefined {
  const value = new Uint32Array(memory, address, 1)[0]!;
  return value > heapStart && value <= memory.byteLength ? value : undefined;
}
