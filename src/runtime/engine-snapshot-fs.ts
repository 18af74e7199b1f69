/**
 * The in-memory filesystem (Emscripten MEMFS) side of an engine snapshot (see engine-snapshot.ts):
 * a record of every file and directory changed since the snapshot, kept copy-on-write so a restore
 * only touches what changed, plus the engine's open file streams and working directory.
 *
 * It relies on private Emscripten internals (MEMFS's shared operation tables, FS.nameTable, the
 * FSStream layout) of the Emscripten version @electric-sql/pglite 0.4.6 was built with.
 */

import { isSharedBytes } from './copy-on-write-files.js';

export interface FsNode {
  id: number;
  name: string;
  parent: FsNode;
  mode: number;
  atime?: number;
  mtime?: number;
  ctime?: number;
  /** Files: their bytes (possibly with spare capacity beyond usedBytes). Directories: name → child. */
  contents: Uint8Array | Record<string, FsNode> | null;
  usedBytes?: number;
  node_ops: object;
}

interface FsStreamState {
  flags: number;
  position: number;
}

export interface FsStream {
  fd: number | null;
  node: FsNode;
  shared: FsStreamState;
  ungotten?: unknown[];
  error?: boolean;
}

type Op = (...args: never[]) => unknown;

export interface EmscriptenFS {
  root: FsNode;
  streams: Array<FsStream | null | undefined>;
  nameTable: Array<FsNode | null>;
  currentPath: string;
  open: Op;
  hashAddNode(node: FsNode): void;
  hashRemoveNode(node: FsNode): void;
  isDir(mode: number): boolean;
  isFile(mode: number): boolean;
}

export interface Memfs {
  ops_table: {
    dir: { node: Record<string, Op> };
    file: { node: Record<string, Op>; stream: Record<string, Op> };
    link: { node: Record<string, Op> };
  } | null;
}

/** A node as it was when first changed after the snapshot. */
type SavedNode = Omit<FsNode, 'id' | 'node_ops'>;

/** The bytes a write in place overwrote, and where. */
interface Overwritten {
  node: FsNode;
  position: number;
  bytes: Uint8Array;
}

/** Operations that change a node, by the argument that names the node they change. */
const CHANGES = {
  dirNode: {
    setattr: 'node',
    mknod: 'parent',
    rename: 'rename',
    unlink: 'parent',
    rmdir: 'parent',
    symlink: 'parent',
  },
  fileNode: { setattr: 'node' },
  linkNode: { setattr: 'node' },
  fileStream: { write: 'stream', allocate: 'stream', msync: 'stream' },
} as const;

/**
 * Watches one engine's MEMFS from the moment it is attached. Nodes are saved the first time they
 * change, so the cost of a snapshot is paid by the writes of the test, not by the restore. A
 * write in place into a file's used bytes (WAL, a table's pages) keeps only the bytes it
 * overwrites: a test's few kilobytes, not the 1 MB of a WAL segment.
 */
export class MemfsChangeLog {
  private readonly saved = new Map<FsNode, SavedNode>();
  /** Writes in place into files not saved whole, in order; and their nodes' times before the first. */
  private overwritten: Overwritten[] = [];
  private readonly overwrittenTimes = new Map<FsNode, Pick<FsNode, 'atime' | 'mtime' | 'ctime'>>();
  private readonly created = new WeakSet<FsNode>();
  private readonly streams: Array<{ stream: FsStream; flags: number; position: number } | null>;
  private readonly cwd: string;
  /** Shared libraries opened since the snapshot: the loader keeps state outside memory and the FS. */
  readonly librariesOpened = new Set<string>();
  private readonly unhook: () => void;

  constructor(
    private readonly fs: EmscriptenFS,
    memfs: Memfs,
  ) {
    this.streams = fs.streams.map((stream) =>
      stream ? { stream, flags: stream.shared.flags, position: stream.shared.position } : null,
    );
    this.cwd = fs.currentPath;
    this.unhook = this.hook(memfs);
  }

  /** Stops watching; the engine's filesystem works on as before. */
  detach(): void {
    this.unhook();
  }

  get changedNodes(): number {
    return this.saved.size + this.overwrittenTimes.size;
  }

  /** Puts every changed node, the open streams and the working directory back as they were. */
  restore(): void {
    const fs = this.fs;
    for (let at = this.overwritten.length - 1; at >= 0; at--) {
      const { node, position, bytes } = this.overwritten[at]!;
      (node.contents as Uint8Array).set(bytes, position);
    }
    for (const [node, times] of this.overwrittenTimes) Object.assign(node, times);
    this.overwritten = [];
    this.overwrittenTimes.clear();
    const dirs = [...this.saved].filter(([node]) => fs.isDir(node.mode));
    // Lookups go through FS.nameTable, keyed by (parent, name): unhash what the directories hold
    // now, put the nodes back, then hash what they held before.
    for (const [dir, was] of dirs) {
      const before = was.contents as Record<string, FsNode>;
      for (const [name, child] of Object.entries(dir.contents as Record<string, FsNode>)) {
        if (before[name] === child) fs.hashRemoveNode(child);
        else this.unhashTree(child);
      }
    }
    for (const [node, was] of this.saved) {
      node.name = was.name;
      node.parent = was.parent;
      node.mode = was.mode;
      node.atime = was.atime;
      node.mtime = was.mtime;
      node.ctime = was.ctime;
      // The saved copy becomes the live one: the next change to this node saves it again.
      node.contents = was.contents;
      if (was.usedBytes !== undefined) node.usedBytes = was.usedBytes;
    }
    for (const [dir] of dirs) {
      for (const child of Object.values(dir.contents as Record<string, FsNode>)) {
        fs.hashRemoveNode(child);
        fs.hashAddNode(child);
      }
    }
    this.saved.clear();
    this.librariesOpened.clear();

    fs.streams.length = Math.max(fs.streams.length, this.streams.length);
    for (let fd = 0; fd < fs.streams.length; fd++) {
      const entry = this.streams[fd];
      if (!entry) {
        fs.streams[fd] = null;
        continue;
      }
      // A stream closed since the snapshot was marked closed by clearing its descriptor.
      entry.stream.fd = fd;
      entry.stream.shared.flags = entry.flags;
      entry.stream.shared.position = entry.position;
      entry.stream.ungotten = [];
      entry.stream.error = false;
      fs.streams[fd] = entry.stream;
    }
    fs.currentPath = this.cwd;
  }

  /** Descriptor numbers and positions of the open streams, and the working directory. */
  streamFacts(): string {
    const open = this.fs.streams.flatMap((stream, fd) =>
      stream ? [`${fd}:${stream.node.id}:${stream.shared.position}`] : [],
    );
    return `${this.fs.currentPath}|${open.join(',')}`;
  }

  /**
   * Unhashes a node leaving its directory and, if it was created since the snapshot (so it is
   * about to vanish), everything under it. The children of a node that existed stay hashed: they
   * are keyed by its id, which a restore keeps.
   */
  private unhashTree(node: FsNode): void {
    this.fs.hashRemoveNode(node);
    if (this.created.has(node) && this.fs.isDir(node.mode) && node.contents) {
      for (const child of Object.values(node.contents as Record<string, FsNode>)) this.unhashTree(child);
    }
  }

  private remember(node: FsNode | undefined): void {
    if (!node || this.saved.has(node) || this.created.has(node)) return;
    const contents = node.contents;
    const times = this.overwrittenTimes.get(node) ?? node;
    this.saved.set(node, {
      name: node.name,
      parent: node.parent,
      mode: node.mode,
      atime: times.atime,
      mtime: times.mtime,
      ctime: times.ctime,
      // Shared bytes are never changed in place (copy-on-write-files.ts): they are kept as they are.
      contents: isSharedBytes(contents)
        ? contents
        : contents instanceof Uint8Array
          ? this.pristine(node, contents.slice(0, node.usedBytes ?? contents.length))
          : contents && { ...contents },
      usedBytes: node.usedBytes,
    });
  }

  /**
   * Keeps what `write(stream, buffer, offset, length, position, canOwn)` is about to overwrite,
   * when it writes in place within the file's used bytes; false when the node must be saved whole.
   */
  private keepOverwritten(node: FsNode, args: readonly unknown[]): boolean {
    const [, , , length, position, canOwn] = args as [unknown, unknown, unknown, number, number, boolean];
    const contents = node.contents;
    // Shared bytes are copied by their first write (copy-on-write-files.ts): saved whole, for free.
    if (canOwn || !(contents instanceof Uint8Array) || isSharedBytes(node.contents)) return false;
    if (!(length > 0) || position < 0 || position + length > (node.usedBytes ?? 0)) return false;
    if (!this.overwrittenTimes.has(node))
      this.overwrittenTimes.set(node, { atime: node.atime, mtime: node.mtime, ctime: node.ctime });
    this.overwritten.push({ node, position, bytes: contents.slice(position, position + length) });
    return true;
  }

  /** `copy` of `node`'s bytes as they were at the snapshot: its kept overwritten bytes put back. */
  private pristine(node: FsNode, copy: Uint8Array): Uint8Array {
    if (!this.overwrittenTimes.delete(node)) return copy;
    const own = this.overwritten.filter((write) => write.node === node);
    for (let at = own.length - 1; at >= 0; at--) copy.set(own[at]!.bytes, own[at]!.position);
    this.overwritten = this.overwritten.filter((write) => write.node !== node);
    return copy;
  }

  private hook(memfs: Memfs): () => void {
    const table = memfs.ops_table;
    if (!table) throw new Error('MEMFS.ops_table');
    const undo: Array<() => void> = [];
    const wrap = (
      ops: Record<string, Op>,
      changes: Record<string, 'node' | 'parent' | 'stream' | 'rename'>,
    ) => {
      for (const [name, changed] of Object.entries(changes)) {
        const original = ops[name];
        if (typeof original !== 'function') throw new Error(`MEMFS operation ${name}`);
        const log = this;
        ops[name] = function (this: unknown, ...args: never[]) {
          const [first, second] = args as unknown as [FsNode & FsStream, FsNode];
          if (changed === 'stream') {
            const node = first.node;
            const inPlace =
              name === 'write' &&
              !log.saved.has(node) &&
              !log.created.has(node) &&
              log.keepOverwritten(node, args);
            if (!inPlace) log.remember(node);
          } else if (changed === 'rename') {
            log.remember(first);
            log.remember(first.parent);
            log.remember(second);
          } else log.remember(first);
          const result = original.apply(this, args);
          if (name === 'mknod' || name === 'symlink') log.created.add(result as FsNode);
          return result;
        } as Op;
        undo.push(() => {
          ops[name] = original;
        });
      }
    };
    wrap(table.dir.node, CHANGES.dirNode);
    wrap(table.file.node, CHANGES.fileNode);
    wrap(table.link.node, CHANGES.linkNode);
    wrap(table.file.stream, CHANGES.fileStream);

    const fs = this.fs;
    const open = fs.open;
    fs.open = ((path: unknown, ...rest: never[]) => {
      if (typeof path === 'string' && path.endsWith('.so')) this.librariesOpened.add(path);
      return (open as (...args: unknown[]) => unknown).call(fs, path, ...rest);
    }) as Op;
    undo.push(() => {
      fs.open = open;
    });
    return () => {
      for (const step of undo.reverse()) step();
    };
  }
}
