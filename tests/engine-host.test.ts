import { once } from 'node:events';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import {
  EngineHostError,
  InteractiveRuntime,
  installAndInitIn,
  leaseDatabase,
  startEngineHost,
} from 'pglite-oxide';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exitOf, spawnPackageScript } from './helpers/child.js';
import { itemsTemplate } from './helpers/items-template.js';
import { tempRoot } from './helpers/temp-root.js';
import { dataRows } from './helpers/wire.js';

async function names(connectionString: string): Promise<string[]> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return (await client.query<{ name: string }>('SELECT name FROM items ORDER BY id')).rows.map(
      (row) => row.name,
    );
  } finally {
    await client.end();
  }
}

async function insert(connectionString: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  await client.query('INSERT INTO items (name) VALUES ($1)', [name]);
  await client.end();
}

describe('the engine host', () => {
  let host: Awaited<ReturnType<typeof startEngineHost>>;

  beforeAll(async () => {
    host = await startEngineHost({ template: await itemsTemplate(), maxDatabases: 2, spare: 1 });
  });
  afterAll(async () => {
    await host.close();
  });

  it('leases a database per test file, and a released one comes back as the template left it', async () => {
    const first = await leaseDatabase(host.address);
    expect(first.env.DATABASE_URL).toBe(first.connectionString);
    await insert(first.connectionString, 'first file');
    expect(await names(first.connectionString)).toEqual(['seeded', 'first file']);
    await first.release();

    const again = await leaseDatabase(host.address);
    expect(await names(again.connectionString)).toEqual(['seeded']);
    await again.release();
  });

  it('gives files running at the same time databases of their own', async () => {
    const [a, b] = await Promise.all([leaseDatabase(host.address), leaseDatabase(host.address)]);
    expect(a.connectionString).not.toBe(b.connectionString);
    await insert(a.connectionString, 'only in a');
    expect(await names(b.connectionString)).toEqual(['seeded']);
    await Promise.all([a.release(), b.release()]);
  });

  it('serves reset and raw wire access over its control socket', async () => {
    const leased = await leaseDatabase(host.address);
    await insert(leased.connectionString, 'to be undone');
    const report = await leased.reset();
    expect(report.path).toBe('snapshot');
    const reply = await leased.execInteractive('SELECT count(*) FROM items');
    expect(dataRows(reply)).toEqual([['1']]);
    await leased.release();
  });

  it('answers a call it does not know with an error naming it, and goes on serving', async () => {
    const at = host.address.lastIndexOf(':');
    const socket = net.connect({ host: host.address.slice(0, at), port: Number(host.address.slice(at + 1)) });
    try {
      socket.write(`${JSON.stringify({ id: 7, op: 'frobnicate', args: {} })}\n`);
      const [line] = (await once(socket, 'data')) as [Buffer];
      expect(JSON.parse(line.toString())).toEqual({
        id: 7,
        ok: false,
        error: {
          name: 'EngineHostError',
          code: 'ENGINE_HOST_FAILED',
          message: "unknown engine host call 'frobnicate'",
        },
      });
    } finally {
      socket.destroy();
    }
    const leased = await leaseDatabase(host.address);
    await leased.release();
  });

  it('takes a database back when the process that leased it dies without releasing', async () => {
    const script = `
      const leased = await ox.leaseDatabase(${JSON.stringify(host.address)});
      const pg = (await import('pg')).default;
      const client = new pg.Client({ connectionString: leased.connectionString });
      await client.connect();
      await client.query("INSERT INTO items (name) VALUES ('from a dead process')");
      process.exit(0);
    `;
    const child = spawnPackageScript(script);
    expect(await exitOf(child), child.lines.join('\n')).toBe(0);
    // Both databases are free again (the limit is 2): two leases succeed, and neither has the row.
    const leases = await Promise.all([leaseDatabase(host.address), leaseDatabase(host.address)]);
    for (const leased of leases) expect(await names(leased.connectionString)).toEqual(['seeded']);
    await Promise.all(leases.map((leased) => leased.release()));
  });

  it('keeps a database on disk as a root that reopens with its data', async () => {
    const leased = await leaseDatabase(host.address);
    await insert(leased.connectionString, 'kept');
    const root = path.join(await tempRoot('pglite-oxide-kept-'), 'kept');
    expect(await leased.keep(root)).toBe(root);
    await leased.release();

    const paths = await installAndInitIn(root);
    const runtime = await InteractiveRuntime.start(paths);
    try {
      const reply = await runtime.execInteractive('SELECT name FROM items ORDER BY id');
      expect(dataRows(reply)).toEqual([['seeded'], ['kept']]);
    } finally {
      await runtime.close();
    }
    expect((await fs.stat(paths.pgdata)).mode & 0o077).toBe(0);
  });
});

describe('an engine host that is gone', () => {
  it("serves a file's other databases, and the next file finds them as the template left them", async () => {
    const single = await startEngineHost({ template: await itemsTemplate(), maxDatabases: 1, spare: 0 });
    const urlOf = (url: string, database: string) => url.replace(/\/postgres$/, `/${database}`);
    try {
      const first = await leaseDatabase(single.address);
      const main = new pg.Client({ connectionString: first.connectionString });
      await main.connect();
      await main.query('CREATE DATABASE scratch');
      await main.end();
      const scratch = new pg.Client({ connectionString: urlOf(first.connectionString, 'scratch') });
      await scratch.connect();
      await scratch.query("CREATE TABLE drafts (body text); INSERT INTO drafts VALUES ('draft')");
      await scratch.end();
      expect(await names(urlOf(first.connectionString, 'postgres'))).toEqual(['seeded']);
      await first.release();

      const second = await leaseDatabase(single.address);
      try {
        await expect(names(urlOf(second.connectionString, 'scratch'))).rejects.toMatchObject({
          code: '3D000',
        });
        // Made again, it starts empty: nothing of the first file's copy is left.
        const again = new pg.Client({ connectionString: second.connectionString });
        await again.connect();
        await again.query('CREATE DATABASE scratch');
        await again.end();
        const scratchAgain = new pg.Client({ connectionString: urlOf(second.connectionString, 'scratch') });
        await scratchAgain.connect();
        expect((await scratchAgain.query("SELECT to_regclass('drafts') AS drafts")).rows).toEqual([
          { drafts: null },
        ]);
        await scratchAgain.end();
        const template = new pg.Client({ connectionString: urlOf(second.connectionString, 'template1') });
        await template.connect();
        expect((await template.query('SELECT current_database() AS db')).rows).toEqual([{ db: 'template1' }]);
        await template.end();
      } finally {
        await second.release();
      }
    } finally {
      await single.close();
    }
  });

  it("passes the run's client timeouts to every database's proxy", async () => {
    const timed = await startEngineHost({
      template: await itemsTemplate(),
      spare: 0,
      // The waiter would get 55P03 long before the proxy's own 30 s idle timeout.
      timeouts: { queueTimeoutMs: 20_000, idleInTransactionTimeoutMs: 300 },
    });
    const lease = await leaseDatabase(timed.address);
    const holder = new pg.Client({ connectionString: lease.connectionString });
    try {
      const ended = new Promise<Error>((resolve) => holder.on('error', resolve));
      await holder.connect();
      await holder.query('BEGIN');
      await holder.query("INSERT INTO items (name) VALUES ('held')");
      // Waits for the idle holder, which the short idle timeout ends: its work is rolled back.
      expect(await names(lease.connectionString)).toEqual(['seeded']);
      expect(await ended).toMatchObject({ code: '25P03' });
    } finally {
      await holder.end().catch(() => {});
      await lease.release();
      await timed.close();
    }
  });

  it('starts no more databases than its memory budget holds, and warns once when a file waits for one', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    // Room for one database (~128 MB each), though maxDatabases would allow three.
    const small = await startEngineHost({
      template: await itemsTemplate(),
      maxDatabases: 3,
      memoryBudgetMb: 200,
      spare: 2,
    });
    try {
      const first = await leaseDatabase(small.address);
      const warned = once(process, 'warning');
      let secondLeased = false;
      const second = leaseDatabase(small.address).then((lease) => {
        secondLeased = true;
        return lease;
      });
      const [warning] = (await warned) as [Error & { code?: string }];
      expect(warning.name).toBe('PgliteOxideWarning');
      expect(warning.code).toBe('PGLITE_OXIDE_MEMORY_BUDGET');
      expect(warning.message).toMatch(/1 database\(s\) of ~128 MB each fill the memory budget of 200 MB/);
      expect(secondLeased).toBe(false);

      await insert(first.connectionString, 'first file');
      await first.release();
      const next = await second;
      // The one database, back as the template left it.
      expect(next.connectionString).toBe(first.connectionString);
      expect(await names(next.connectionString)).toEqual(['seeded']);

      // A third file waiting does not warn again.
      const third = leaseDatabase(small.address);
      await next.release();
      await (await third).release();
      expect(
        warnings.filter((w) => (w as { code?: string }).code === 'PGLITE_OXIDE_MEMORY_BUDGET'),
      ).toHaveLength(1);
    } finally {
      process.off('warning', onWarning);
      await small.close();
    }
  });

  it('refuses a memory budget that is not a positive number of megabytes', async () => {
    const template = await itemsTemplate();
    for (const memoryBudgetMb of [0, -5, Number.NaN, '512' as unknown as number]) {
      await expect(startEngineHost({ template, memoryBudgetMb })).rejects.toThrow(
        /memoryBudgetMb must be a positive number of megabytes/,
      );
    }
  });

  it('refuses leases with an EngineHostError that names the address', async () => {
    const host = await startEngineHost({ template: await itemsTemplate(), spare: 0 });
    const address = host.address;
    await host.close();
    const leasing = leaseDatabase(address);
    await expect(leasing).rejects.toBeInstanceOf(EngineHostError);
    await expect(leasing).rejects.toThrow(address);
  });
});
