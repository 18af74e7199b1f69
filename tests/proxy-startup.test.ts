import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { PgliteOxideError, startProxy } from 'pglite-oxide';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServedEngine } from './helpers/proxy-engine.js';
import { type Message, RawClient, startupPacket } from './helpers/raw-client.js';
import { tempRoot } from './helpers/temp-root.js';

const run = promisify(execFile);

let served: Awaited<ReturnType<typeof startServedEngine>>;

beforeAll(async () => {
  served = await startServedEngine({ startupTimeoutMs: 1_000 });
});

afterAll(async () => {
  await served?.close();
});

describe('proxy startup', () => {
  it('binds a random loopback port and gives a working connection string', async () => {
    expect(served.proxy.host).toBe('127.0.0.1');
    expect(served.proxy.port).toBeGreaterThan(0);
    expect(served.proxy.connectionString).toBe(
      `postgresql://postgres@127.0.0.1:${served.proxy.port}/postgres`,
    );
    const client = new pg.Client(served.proxy.connectionString);
    await client.connect();
    expect((await client.query('SELECT 40 + 2 AS answer')).rows).toEqual([{ answer: 42 }]);
    await client.end();
  });

  it("answers SSLRequest and GSSENCRequest with 'N', then accepts a plain startup", async () => {
    const client = await RawClient.connect(served.proxy.port);
    client.send(serialize.requestSsl());
    expect((await client.takeBytes(1)).toString()).toBe('N');
    const gssEncRequest = Buffer.alloc(8);
    gssEncRequest.writeInt32BE(8, 0);
    gssEncRequest.writeInt32BE(80877104, 4);
    client.send(gssEncRequest);
    expect((await client.takeBytes(1)).toString()).toBe('N');
    client.send(serialize.startup({ user: 'postgres', database: 'postgres' }));
    const startup = await client.untilReady();
    expect(startup.at(-1)?.status).toBe('I');
    client.end();
  });

  it('refuses protocol majors other than 3 with FATAL 0A000', async () => {
    for (const version of [(2 << 16) | 0, (4 << 16) | 0]) {
      const client = await RawClient.connect(served.proxy.port);
      client.send(startupPacket(version, { user: 'postgres' }));
      const messages = await client.untilClosed();
      expect(messages).toHaveLength(1);
      expect(messages[0]).toMatchObject({ name: 'error', severity: 'FATAL', code: '0A000' });
    }
  });

  it('answers protocol 3.2 (libpq 18) and protocol options with NegotiateProtocolVersion, then goes on with 3.0', async () => {
    const client = await RawClient.connect(served.proxy.port);
    client.send(
      startupPacket((3 << 16) | 2, { user: 'postgres', database: 'postgres', '_pq_.x_option': 'on' }),
    );
    // NegotiateProtocolVersion ('v': newest minor 0, one option not recognized), read raw: the
    // parser of the tests' client does not know it.
    const header = await client.takeBytes(5);
    expect(String.fromCharCode(header[0]!)).toBe('v');
    const body = await client.takeBytes(header.readInt32BE(1) - 4);
    expect([body.readInt32BE(0), body.readInt32BE(4), body.toString('utf8', 8, body.length - 1)]).toEqual([
      0,
      1,
      '_pq_.x_option',
    ]);
    const messages = await client.untilReady();
    expect(messages.map((message) => message.name)).toContain('authenticationOk');
    client.send(serialize.query('SELECT 1'));
    expect((await client.untilReady()).map((message) => message.name)).toContain('dataRow');
    client.end();
  });

  it('reports ParameterStatus values from the engine and the client application_name', async () => {
    const client = await RawClient.connect(served.proxy.port);
    client.send(
      serialize.startup({ user: 'postgres', database: 'postgres', application_name: 'startup-test' }),
    );
    const messages = await client.untilReady();
    const status = Object.fromEntries(
      messages.filter((m) => m.name === 'parameterStatus').map((m) => [m.parameterName, m.parameterValue]),
    );
    expect(status).toMatchObject({
      server_version: '17.5',
      server_encoding: 'UTF8',
      client_encoding: 'UTF8',
      DateStyle: 'ISO, MDY',
      TimeZone: 'UTC',
      integer_datetimes: 'on',
      standard_conforming_strings: 'on',
      application_name: 'startup-test',
    });
    client.end();
    // Without application_name, fallback_application_name (libpq's) stands in, as on PostgreSQL.
    const fallback = await RawClient.connect(served.proxy.port);
    fallback.send(
      serialize.startup({ user: 'postgres', database: 'postgres', fallback_application_name: 'psql' }),
    );
    const named = (await fallback.untilReady()).find((m) => m.parameterName === 'application_name');
    expect(named?.parameterValue).toBe('psql');
    fallback.end();
  });

  it('gives each client a distinct BackendKeyData', async () => {
    const keys = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const client = await RawClient.connect(served.proxy.port);
      client.send(serialize.startup({ user: 'postgres', database: 'postgres' }));
      const key = (await client.untilReady()).find((m) => m.name === 'backendKeyData')!;
      keys.add(`${key.processID}/${key.secretKey}`);
      client.end();
    }
    expect(keys.size).toBe(3);
  });

  it('refuses a database the engine does not serve with FATAL 3D000, and other roles with 28000', async () => {
    for (const [params, code] of [
      [{ user: 'postgres', database: 'no_such_db' }, '3D000'],
      [{ user: 'alice', database: 'postgres' }, '28000'],
      [{ database: 'postgres' }, '28000'],
    ] as const) {
      const client = await RawClient.connect(served.proxy.port);
      client.send(serialize.startup(params as Record<string, string>));
      const messages = await client.untilClosed();
      expect(messages.at(-1)).toMatchObject({ name: 'error', severity: 'FATAL', code });
    }
  });

  it('closes a client that stays silent at startup', async () => {
    const client = await RawClient.connect(served.proxy.port);
    const messages = await client.untilClosed(20_000);
    expect(messages.at(-1)).toMatchObject({ severity: 'FATAL', code: '08P01' });
  });

  it('serves a Unix socket that psql reaches with -h <dir> -p <port>', async () => {
    const socketDir = path.join(await tempRoot(), 'sockets');
    const proxy = await startProxy({ runtime: served.runtime, socketDir, port: 6543 });
    try {
      expect(proxy.socketPath).toBe(path.join(socketDir, '.s.PGSQL.6543'));
      expect((await fs.stat(socketDir)).mode & 0o777).toBe(0o700);
      const { stdout } = await run('psql', [
        '-h',
        socketDir,
        '-p',
        '6543',
        '-U',
        'postgres',
        '-Atc',
        'SELECT 7*6',
        'postgres',
      ]);
      expect(stdout.trim()).toBe('42');
      const client = new pg.Client(proxy.connectionString);
      await client.connect();
      expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      await client.end();
    } finally {
      await proxy.close();
    }
    await expect(fs.stat(path.join(socketDir, '.s.PGSQL.6543'))).rejects.toThrow();
  });

  it('refuses a world-writable socket directory and an open address without a password', async () => {
    const open = await tempRoot();
    await fs.chmod(open, 0o777);
    await expect(startProxy({ runtime: served.runtime, socketDir: open })).rejects.toMatchObject({
      code: 'PROXY_START_FAILED',
    });
    await expect(startProxy({ runtime: served.runtime, host: '0.0.0.0' })).rejects.toBeInstanceOf(
      PgliteOxideError,
    );
  });

  for (const authMethod of ['scram-sha-256', 'md5'] as const) {
    it(`requires the password with ${authMethod}`, async () => {
      const proxy = await startProxy({ runtime: served.runtime, port: 0, password: 's3cret pw', authMethod });
      try {
        const good = new pg.Client(proxy.connectionString);
        await good.connect();
        expect((await good.query('SELECT current_user AS who')).rows).toEqual([{ who: 'postgres' }]);
        await good.end();
        const bad = new pg.Client({
          host: '127.0.0.1',
          port: proxy.port,
          user: 'postgres',
          database: 'postgres',
          password: 'wrong',
        });
        await expect(bad.connect()).rejects.toMatchObject({ code: '28P01' });
        const { stdout } = await run('psql', [proxy.connectionString, '-Atc', 'SELECT 1']);
        expect(stdout.trim()).toBe('1');
      } finally {
        await proxy.close();
      }
    });
  }

  it('silent connections cannot keep a client out: the one waiting longest makes room', async () => {
    const proxy = await startProxy({
      runtime: served.runtime,
      port: 0,
      maxStartupConnections: 8,
      maxConnections: 10,
    });
    const silent = await Promise.all(Array.from({ length: 40 }, () => RawClient.connect(proxy.port)));
    try {
      const client = new pg.Client(proxy.connectionString);
      await client.connect();
      expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      await client.end();
      // 32 of them made room for the later ones (the longest waiting each time).
      const evicted: Message[][] = [];
      await new Promise<void>((resolve) => {
        for (const raw of silent) {
          raw.untilClosed(30_000).then(
            (messages) => {
              evicted.push(messages);
              if (evicted.length === 32) resolve();
            },
            () => {},
          );
        }
      });
      for (const messages of evicted)
        expect(messages.at(-1)).toMatchObject({ severity: 'FATAL', code: '53300' });
    } finally {
      for (const raw of silent) raw.socket.destroy();
      await proxy.close();
    }
  });

  it('counts logged-in clients against maxConnections (53300)', async () => {
    const proxy = await startProxy({ runtime: served.runtime, port: 0, maxConnections: 1 });
    const first = new pg.Client(proxy.connectionString);
    try {
      await first.connect();
      const second = new pg.Client(proxy.connectionString);
      await expect(second.connect()).rejects.toMatchObject({ code: '53300' });
    } finally {
      await first.end();
      await proxy.close();
    }
  });

  it('holds a client that has not logged in to small messages, and answers a wrong password late', async () => {
    const proxy = await startProxy({
      runtime: served.runtime,
      port: 0,
      password: 'pw',
      authFailureDelayMs: 200,
    });
    try {
      const big = await RawClient.connect(proxy.port);
      big.send(serialize.startup({ user: 'postgres', database: 'postgres' }));
      await big.untilMessage((message) => message.name === 'authenticationSASL');
      const header = Buffer.from([0x70, 0, 0, 0, 0]);
      header.writeInt32BE(64 * 1024 * 1024, 1);
      big.send(header);
      expect((await big.untilClosed()).at(-1)).toMatchObject({ severity: 'FATAL', code: '08P01' });
      const wrong = new pg.Client({
        host: '127.0.0.1',
        port: proxy.port,
        user: 'postgres',
        database: 'postgres',
        password: 'no',
      });
      await expect(wrong.connect()).rejects.toMatchObject({ code: '28P01' });
    } finally {
      await proxy.close();
    }
  });

  it('refuses a socket directory that another user owns', async () => {
    const dir = await tempRoot();
    await fs.chmod(dir, 0o755);
    // The machines that run this suite run it as root, who can give the directory away.
    expect(process.getuid?.()).toBe(0);
    await fs.chown(dir, 1, 1);
    await expect(startProxy({ runtime: served.runtime, socketDir: dir })).rejects.toThrow(
      /belongs to another user/,
    );
  });
});
