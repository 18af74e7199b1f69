/**
 * Lets an engine's MEMFS files be views on a cluster image other engines share (see
 * cluster-image.ts): a file is copied into memory of its own the first time it is written, so
 * the many files a test never touches cost nothing per engine.
 *
 * MEMFS changes a file's bytes in place in one operation only, `write` (msync goes through it);
 * its resizes and `allocate` put new arrays in place of the old. It relies on the same private
 * Emscripten internals as the snapshot's change log (engine-snapshot-fs.ts).
 */
import type { FsNode, FsStream, Memfs } from './engine-snapshot-fs.js';

/**
 * Shared memory that is one engine's own file, kept shared only so that it outlives the engine's
 * thread (see file-mirror.ts): written in place like any file of the engine's.
 */
const ownFiles = new WeakSet<SharedArrayBuffer>();

export function markOwnFile(bytes: Uint8Array<SharedArrayBuffer>): void {
  ownFiles.add(bytes.buffer);
}

export function isOwnFile(contents: FsNode['contents']): boolean {
  return contents instanceof Uint8Array && ownFiles.has(contents.buffer as SharedArrayBuffer);
}

/** Whether a file's bytes are (a view on) memory shared with other engines. */
export function isSharedBytes(contents: FsNode['contents']): contents is Uint8Array {
  return (
    contents instanceof Uint8Array &&
    contents.buffer instanceof SharedArrayBuffer &&
    !ownFiles.has(contents.buffer)
  );
}

/** Makes `write` copy a file whose bytes are shared before it changes them. */
export function copyOnWrite(memfs: Memfs): void {
  const stream = memfs.ops_table?.file.stream;
  const write = stream?.write;
  if (!stream || typeof write !== 'function') throw new Error('MEMFS.ops_table.file.stream.write');
  stream.write = function (this: unknown, ...args: never[]) {
    const node = (args[0] as unknown as FsStream).node;
    if (isSharedBytes(node.contents)) node.contents = node.contents.slice(0, node.usedBytes);
    return write.apply(this, args);
  } as typeof write;
}
