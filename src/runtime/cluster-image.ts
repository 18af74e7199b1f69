import { closeSync, fstatSync, openSync, readSync, renameSync, statSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';

/** A cluster's files held in memory, ready to be written into any number of engines. */
export interface ClusterImage {
  /** Directories relative to the cluster root, parents before children. */
  dirs: string[];
  /**
   * Every file's bytes, one after the other, in memory shared by the process's threads. Engines
   * read them in place and copy a file only when they first write it (see memory-engine.ts).
   */
  bytes: Uint8Array;
  /** Each file's place in `bytes`; or its own `bytes` (an engine's files kept by file-mirror.ts). */
  files: Array<{ path: string; offset: number; length: number; bytes?: Uint8Array }>;
}

// A template or cached cluster is immutable once built (its directory name is a hash of its
// content), so one read per process serves every engine started from it. Reading its ~1000 files
// one by one costs ~300 ms; the first read also saves them as one packed file next to the
// cluster (<dir>.image), which later processes read in one go. Threads share one image.
const images = new Map<string, Promise<ClusterImage>>();

/** Seeds this thread's cache with an image read by another thread of the process. */
export function adoptClusterImage(pgdata: string, image: ClusterImage): void {
  images.set(path.resolve(pgdata), Promise.resolve(image));
}

export function clusterImage(pgdata: string): Promise<ClusterImage> {
  const key = path.resolve(pgdata);
  let image = images.get(key);
  if (!image) {
    image = loadClusterImage(key);
    image.catch(() => images.delete(key));
    images.set(key, image);
  }
  return image;
}

/** Reads a cluster, from its packed file when that is current, packing it otherwise. Uncached. */
export function loadClusterImage(root: string): Promise<ClusterImage> {
  return readPacked(root) ?? packFresh(root);
}

interface PackedIndex {
  /** The directory it was packed from: a cluster rebuilt in its place is a new directory. */
  identity: string;
  dirs: string[];
  files: ClusterImage['files'];
}

function identityOf(root: string): string {
  const stat = statSync(root);
  return `${stat.dev}:${stat.ino}:${stat.mtimeMs}`;
}

async function packFresh(root: string): Promise<ClusterImage> {
  // Taken before reading, so a directory changed meanwhile is not packed under its new identity.
  const identity = identityOf(root);
  return savePacked(root, await readClusterDir(root), identity);
}

function packedPath(root: string): string {
  return `${root}.image`;
}

function readPacked(root: string): Promise<ClusterImage> | undefined {
  try {
    const packed = readShared(packedPath(root));
    const indexLength = packed.readUInt32BE(0);
    const index = JSON.parse(packed.toString('utf8', 4, 4 + indexLength)) as PackedIndex;
    const bytes = new Uint8Array(packed.buffer, packed.byteOffset + 4 + indexLength);
    const last = index.files.at(-1);
    if (index.identity !== identityOf(root)) return undefined;
    if (last && last.offset + last.length !== bytes.length) return undefined;
    return Promise.resolve({ dirs: index.dirs, files: index.files, bytes });
  } catch {
    // Missing, or unreadable: the directory is the truth; it is packed again.
    return undefined;
  }
}

function savePacked(root: string, image: ClusterImage, identity: string): ClusterImage {
  const packedIndex: PackedIndex = { identity, dirs: image.dirs, files: image.files };
  const index = Buffer.from(JSON.stringify(packedIndex));
  const header = Buffer.alloc(4);
  header.writeUInt32BE(index.length);
  const target = packedPath(root);
  const staging = `${target}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  try {
    writeFileSync(staging, Buffer.concat([header, index, image.bytes]));
    renameSync(staging, target);
  } catch {
    // A read-only cache only costs later processes the slower read.
    void fs.rm(staging, { force: true });
  }
  return image;
}

/** A file's bytes in memory other threads can be given without a copy. */
function readShared(file: string): Buffer {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const bytes = Buffer.from(new SharedArrayBuffer(size));
    for (let read = 0; read < size; ) {
      const got = readSync(fd, bytes, read, size - read, read);
      if (got === 0) throw new Error(`${file} ended early`);
      read += got;
    }
    return bytes;
  } finally {
    closeSync(fd);
  }
}

async function readClusterDir(root: string): Promise<ClusterImage> {
  const entries = await fs.readdir(root, { recursive: true, withFileTypes: true });
  const relative = (entry: { parentPath: string; name: string }) =>
    path.relative(root, path.join(entry.parentPath, entry.name)).split(path.sep).join('/');
  const dirs = entries
    .filter((entry) => entry.isDirectory())
    .map(relative)
    .sort((a, b) => a.split('/').length - b.split('/').length);
  const contents = await Promise.all(
    entries
      .filter((entry) => entry.isFile())
      .map(async (entry) => ({
        path: relative(entry),
        bytes: await fs.readFile(path.join(entry.parentPath, entry.name)),
      })),
  );
  const total = contents.reduce((sum, file) => sum + file.bytes.length, 0);
  const bytes = new Uint8Array(new SharedArrayBuffer(total));
  let offset = 0;
  const files = contents.map((file) => {
    const placed = { path: file.path, offset, length: file.bytes.length };
    bytes.set(file.bytes, offset);
    offset += file.bytes.length;
    return placed;
  });
  return { dirs, bytes, files };
}

/**
 * Writes `image` into the new directory `to` (which must not exist), the files `keep` accepts only
 * (paths relative to the cluster root).
 */
export async function writeClusterImage(
  image: ClusterImage,
  to: string,
  keep: (relative: string) => boolean = () => true,
): Promise<void> {
  await fs.mkdir(to, { mode: 0o700 });
  for (const dir of image.dirs) if (keep(dir)) await fs.mkdir(path.join(to, dir), { mode: 0o700 });
  for (const file of image.files) {
    if (!keep(file.path)) continue;
    const bytes = file.bytes ?? image.bytes.subarray(file.offset, file.offset + file.length);
    await fs.writeFile(path.join(to, file.path), bytes.subarray(0, file.length), { mode: 0o600 });
  }
}
