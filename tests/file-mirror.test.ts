import { describe, expect, it } from 'vitest';
import { FileMirror } from '../src/runtime/file-mirror.js';

const bytesOf = (text: string) => {
  const bytes = new Uint8Array(new SharedArrayBuffer(64));
  bytes.set(Buffer.from(text));
  return bytes;
};

describe('the files of an in-memory engine, as its serving thread keeps them', () => {
  it('starts from the image, then follows what the engine reports, even reports not yet delivered', () => {
    const template = Buffer.from('PG17base');
    const mirror = new FileMirror({
      dirs: ['base', 'base/5', 'pg_wal'],
      bytes: template,
      files: [
        { path: 'PG_VERSION', offset: 0, length: 4 },
        { path: 'base/5/1259', offset: 4, length: 4 },
      ],
    });
    const used = new Int32Array(new SharedArrayBuffer(4));
    const port = mirror.enginePort;
    port.postMessage({ op: 'file', path: 'pg_wal/000000010000000000000001', bytes: bytesOf('wal-1'), used });
    Atomics.store(used, 0, 5);
    port.postMessage({ op: 'mkdir', path: 'base/16384' });
    port.postMessage({ op: 'file', path: 'base/16384/1', bytes: bytesOf('copy'), used: new Int32Array([4]) });
    port.postMessage({ op: 'rename', from: 'base/16384', to: 'base/16385' });
    port.postMessage({ op: 'unlink', path: 'base/5/1259' });
    port.postMessage({ op: 'rmdir', path: 'base/5' });
    // Read at once, as after the engine's thread was ended: nothing posted is lost.
    const image = mirror.image();
    mirror.close();
    expect(image.dirs).toEqual(['base', 'pg_wal', 'base/16385']);
    const files = Object.fromEntries(
      image.files.map((file) => [file.path, Buffer.from(file.bytes!).toString()]),
    );
    expect(files).toEqual({
      PG_VERSION: 'PG17',
      'pg_wal/000000010000000000000001': 'wal-1',
      'base/16385/1': 'copy',
    });
  });
});
