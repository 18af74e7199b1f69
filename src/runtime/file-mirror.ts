// A throwaway database's files live in its engine's memory, in the engine's own thread. When a
// statement will not stop, that thread is ended, and its files would go with it. So that the new
// engine recovers to the last commit, as one on a data directory does, every file the engine
// writes is kept in memory shared with the serving thread: the engine reports each file it makes
// or grows into a new buffer, and each rename and removal (reportFileChanges); the serving thread
// keeps the list (FileMirror) and starts the new engine from it, as from a template's image.
// PostgreSQL's crash recovery does the rest. A file's length is shared too, so a write in place
// costs one atomic store. It relies on MEMFS internals, as engine-snapshot-fs.ts does.
import { MessageChannel, type MessagePort, receiveMessageOnPort } from 'node:worker_threads';
import type { ClusterImage } from './cluster-image.js';
import { isOwnFile, markOwnFile } from './copy-on-write-files.js';
import type { FsNode, FsStream, Memfs } from './engine-snapshot-fs.js';

/** What the engine's thread tells the serving thread, paths relative to the data directory. */
type FileChange =
  | { op: 'file'; path: string; bytes: Uint8Array; used: Int32Array }
  | { op: 'mkdir' | 'unlink' | 'rmdir'; path: string }
  | { op: 'rename'; from: string; to: string };

interface MirroredFS {
  getPath(node: FsNode): string;
  isDir(mode: number): boolean;
  isFile(mode: number): boolean;
}

type Op = (...args: never[]) => unknown;

/** The engine's side: keeps the files under `root` in shared memory and reports them on `port`. */
export function reportFileChanges(fs: MirroredFS, memfs: Memfs, root: string, port: MessagePort): void {
  const table = memfs.ops_table;
  if (!table) throw new Error('MEMFS.ops_table');
  const prefix = `${root}/`;
  const relative = (path: string) => (path.startsWith(prefix) ? path.slice(prefix.length) : null);
  const send = (change: FileChange) => port.postMessage(change);
  /** Each reported file's buffer and shared length. */
  const reported = new WeakMap<FsNode, { bytes: Uint8Array; used: Int32Array }>();

  const sync = (node: FsNode) => {
    if (!fs.isFile(node.mode)) return;
    const used = node.usedBytes ?? 0;
    let bytes = node.contents as Uint8Array | null;
    const record = reported.get(node);
    if (record && record.bytes === bytes) {
      Atomics.store(record.used, 0, used);
      return;
    }
    const path = relative(fs.getPath(node));
    if (path === null) return;
    if (!bytes || !isOwnFile(bytes)) {
      const own = new Uint8Array(new SharedArrayBuffer(Math.max(bytes?.length ?? 0, used)));
      if (bytes && used > 0) own.set(bytes.subarray(0, used));
      markOwnFile(own);
      node.contents = own;
      bytes = own;
    }
    const shared = record?.used ?? new Int32Array(new SharedArrayBuffer(4));
    Atomics.store(shared, 0, used);
    reported.set(node, { bytes, used: shared });
    send({ op: 'file', path, bytes, used: shared });
  };

  const after = (ops: Record<string, Op>, name: string, then: (args: unknown[], result: unknown) => void) => {
    const original = ops[name];
    if (typeof original !== 'function') throw new Error(`MEMFS operation ${name}`);
    ops[name] = function (this: unknown, ...args: never[]) {
      const result = original.apply(this, args);
      then(args, result);
      return result;
    } as Op;
  };
  const childPath = (parent: unknown, name: unknown) => relative(`${fs.getPath(parent as FsNode)}/${name}`);

  for (const name of ['write', 'allocate', 'msync']) {
    after(table.file.stream, name, ([stream]) => sync((stream as FsStream).node));
  }
  after(table.file.node, 'setattr', ([node]) => sync(node as FsNode));
  after(table.dir.node, 'mknod', ([parent, name, mode], made) => {
    if (fs.isFile(mode as number)) sync(made as FsNode);
    else if (fs.isDir(mode as number)) {
      const path = childPath(parent, name);
      if (path !== null) send({ op: 'mkdir', path });
    }
  });
  for (const op of ['unlink', 'rmdir'] as const) {
    const original = table.dir.node[op]!;
    table.dir.node[op] = function (this: unknown, ...args: never[]) {
      const path = childPath(args[0], args[1]);
      const result = original.apply(this, args);
      if (path !== null) send({ op, path });
      return result;
    } as Op;
  }
  const rename = table.dir.node.rename!;
  table.dir.node.rename = function (this: unknown, ...args: never[]) {
    const node = args[0] as unknown as FsNode;
    const from = relative(fs.getPath(node));
    const result = rename.apply(this, args);
    const to = relative(fs.getPath(node));
    if (from !== null && to !== null) send({ op: 'rename', from, to });
    else if (to !== null) sync(node);
    return result;
  } as Op;
}

/**
 * The serving thread's side: the engine's files as last reported, starting from the image the
 * engine started from. `image()` is what a new engine starts from.
 */
export class FileMirror {
  private readonly dirs: Set<string>;
  private readonly files = new Map<string, { bytes: Uint8Array; used: Int32Array | number }>();
  private readonly channel = new MessageChannel();

  constructor(image: ClusterImage) {
    this.dirs = new Set(image.dirs);
    for (const file of image.files) {
      const bytes = file.bytes ?? image.bytes.subarray(file.offset, file.offset + file.length);
      this.files.set(file.path, { bytes, used: file.length });
    }
    this.channel.port1.on('message', (change: FileChange) => this.apply(change));
    this.channel.port1.unref();
  }

  /** The port the engine reports on (transferred to its thread). */
  get enginePort(): MessagePort {
    return this.channel.port2;
  }

  /** The files as the engine left them: every report it sent is read first, even from a thread ended. */
  image(): ClusterImage {
    for (let queued = receiveMessageOnPort(this.channel.port1); queued; ) {
      this.apply(queued.message as FileChange);
      queued = receiveMessageOnPort(this.channel.port1);
    }
    const depth = (dir: string) => dir.split('/').length;
    const dirs = [...this.dirs].sort((a, b) => depth(a) - depth(b) || a.localeCompare(b));
    const files = [...this.files].map(([path, file]) => {
      const length = typeof file.used === 'number' ? file.used : Atomics.load(file.used, 0);
      return { path, offset: 0, length, bytes: file.bytes.subarray(0, length) };
    });
    return { dirs, bytes: new Uint8Array(0), files };
  }

  close(): void {
    this.channel.port1.close();
  }

  private apply(change: FileChange): void {
    switch (change.op) {
      case 'file':
        this.files.set(change.path, { bytes: change.bytes, used: change.used });
        return;
      case 'mkdir':
        this.dirs.add(change.path);
        return;
      case 'rmdir':
        this.dirs.delete(change.path);
        return;
      case 'unlink':
        this.files.delete(change.path);
        return;
      case 'rename': {
        const moved = (path: string) =>
          path === change.from
            ? change.to
            : path.startsWith(`${change.from}/`)
              ? change.to + path.slice(change.from.length)
              : null;
        for (const [path, file] of [...this.files]) {
          const to = moved(path);
          if (to === null) continue;
          this.files.delete(path);
          this.files.set(to, file);
        }
        for (const dir of [...this.dirs]) {
          const to = moved(dir);
          if (to === null) continue;
          this.dirs.delete(dir);
          this.dirs.add(to);
        }
      }
    }
  }
}
