import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

// A throwaway native PostgreSQL for side-by-side figures, when the machine has the server
// binaries. initdb refuses to run as root, so as root the server runs as the postgres user.

const run = promisify(execFile);
/** The newest server the machine's PostgreSQL packages installed. */
export const NATIVE_BIN = newestNativeBin();

function newestNativeBin(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((name) => /^\d+$/.test(name)) : [];
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0] ?? '15';
  return path.join(root, newest, 'bin');
}

export interface NativeServer {
  url: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts one with fsync off on a free port of 127.0.0.1; null when the binaries are missing. */
export async function startNativePostgres(): Promise<NativeServer | null> {
  if (!existsSync(path.join(NATIVE_BIN, 'initdb'))) return null;
  const asPostgres = process.getuid?.() === 0;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pglite-oxide-native-'));
  const exec = (bin: string, args: string[]) =>
    asPostgres
      ? run('runuser', ['-u', 'postgres', '--', path.join(NATIVE_BIN, bin), ...args])
      : run(path.join(NATIVE_BIN, bin), args);
  try {
    if (asPostgres) {
      const { stdout } = await run('id', ['-u', 'postgres']);
      const uid = Number(stdout.trim());
      await fs.chown(dir, uid, uid);
      await fs.chmod(dir, 0o700);
    }
    const data = path.join(dir, 'data');
    await exec('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
    const port = await freePort();
    await exec('pg_ctl', [
      '-D',
      data,
      '-l',
      path.join(dir, 'log'),
      '-w',
      '-o',
      `-c fsync=off -c listen_addresses=127.0.0.1 -p ${port} -k ${dir}`,
      'start',
    ]);
    return {
      url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
      stop: async () => {
        await exec('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']).catch(() => {});
        await fs.rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    console.error(`native PostgreSQL unavailable: ${(error as Error).message.split('\n')[0]}`);
    await fs.rm(dir, { recursive: true, force: true });
    return null;
  }
}
