import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { exitOf, killAfterTest } from './helpers/child.js';
import { queryRows } from './helpers/pg-query.js';
import { tempRoot } from './helpers/temp-root.js';

// The built command, as `npx pglite-oxide` runs it (npm test builds before testing).
const CLI = path.resolve('dist/cli.js');
const execFileAsync = promisify(execFile);

/** Runs the command to its end, or kills it before the test's own timeout would strike. */
async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  try {
    const running = execFileAsync(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      timeout: 45_000,
      killSignal: 'SIGKILL',
    });
    killAfterTest(running.child);
    const { stdout, stderr } = await running;
    return { status: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout: string; stderr: string };
    return { status: failed.code ?? -1, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** Starts `serve`, and resolves with the connection URL it prints first. */
async function serve(
  args: string[],
): Promise<{ child: ChildProcess; url: string; exit: Promise<number | null>; stderr: () => string }> {
  const child = killAfterTest(
    spawn(process.execPath, [CLI, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  const exit = exitOf(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const url = await new Promise<string>((resolve, reject) => {
    let stdout = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const line = stdout.split('\n')[0];
      if (stdout.includes('\n') && line) resolve(line.trim());
    });
    void exit.then((code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
  });
  return { child, url, exit, stderr: () => stderr };
}

describe('the pglite-oxide command', () => {
  it('prints its version and help, and exits 2 on a usage error', async () => {
    const { version } = JSON.parse(await fs.readFile('package.json', 'utf8')) as { version: string };
    expect((await cli(['--version'])).stdout.trim()).toBe(version);
    const help = await cli(['run', '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('--migrations');
    const unknown = await cli(['frobnicate']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/^pglite-oxide: unknown command 'frobnicate'/);
    expect((await cli(['serve', '--port', 'many'])).status).toBe(2);
    const badTimeout = await cli(['run', '--queue-timeout', '-5', '--', 'true']);
    expect(badTimeout.status).toBe(2);
    expect(badTimeout.stderr).toContain('not a positive number of milliseconds: -5');
  });

  it("serves with the waiters' limit it is given", async () => {
    const served = await serve(['--queue-timeout', '700', '--idle-in-transaction-timeout', '60000']);
    const holder = new pg.Client(served.url);
    const waiter = new pg.Client(served.url);
    try {
      await Promise.all([holder.connect(), waiter.connect()]);
      await holder.query('BEGIN');
      await expect(waiter.query('SELECT 1')).rejects.toMatchObject({
        code: '55P03',
        message: expect.stringMatching(/^waited 700 ms \(queueTimeoutMs\) for client \d+/),
      });
    } finally {
      await Promise.all([holder.end(), waiter.end()]);
      served.child.kill('SIGINT');
      await served.exit;
    }
  });

  it('runs a command against an ephemeral database and passes its exit status on', async () => {
    const psql = await cli(['run', '--', 'psql', '-Atc', 'SELECT 40 + 2']);
    expect(psql.stdout.trim()).toBe('42');
    expect(psql.status).toBe(0);
    const script = `
      const pg = require(${JSON.stringify(require.resolve('pg'))});
      const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
      client.connect().then(() => client.query('SELECT current_database() AS db'))
        .then((r) => { console.log(r.rows[0].db, process.env.PGHOST, process.env.PGPORT, process.env.PGUSER); return client.end(); });
    `;
    const node = await cli(['run', '--', process.execPath, '-e', script]);
    expect(node.stdout.trim()).toMatch(/^postgres 127\.0\.0\.1 \d+ postgres$/);
    expect((await cli(['run', '--', 'sh', '-c', 'exit 3'])).status).toBe(3);
    // A command a signal ends exits as a shell reports it: 128 + the signal's number.
    expect((await cli(['run', '--', 'sh', '-c', 'kill -SEGV $$'])).status).toBe(139);
    expect((await cli(['run', '--', 'sh', '-c', 'kill -ABRT $$'])).status).toBe(134);
    const missing = await cli(['run', '--', 'no-such-command-anywhere']);
    expect(missing.status).toBe(127);
  });

  it('stops run on Ctrl+C: the command ends, run exits 130, nothing is left behind', async () => {
    const tmp = await tempRoot('pglite-oxide-cli-tmp-');
    const command = `console.log('ready ' + process.pid); setInterval(() => {}, 1000);`;
    // A process group of its own, as a terminal's foreground job: Ctrl+C signals the whole group.
    const child = killAfterTest(
      spawn(process.execPath, [CLI, 'run', '--', process.execPath, '-e', command], {
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
        env: { ...process.env, TMPDIR: tmp },
      }),
    );
    const exit = exitOf(child);
    try {
      const commandPid = await new Promise<number>((resolve, reject) => {
        let stdout = '';
        child.stdout?.on('data', (chunk: Buffer) => {
          stdout += chunk.toString();
          const ready = /ready (\d+)/.exec(stdout);
          if (ready) resolve(Number(ready[1]));
        });
        void exit.then((code) => reject(new Error(`run exited with ${code} before the command started`)));
      });
      process.kill(-child.pid!, 'SIGINT');
      expect(await exit).toBe(130);
      expect(() => process.kill(commandPid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
      expect(await fs.readdir(tmp)).toEqual([]);
    } finally {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // the group is gone already
      }
    }
  });

  it('applies migrations and seed for run, and names the file when one fails', async () => {
    const dir = await tempRoot('pglite-oxide-cli-project-');
    await fs.writeFile(path.join(dir, '001_items.sql'), 'CREATE TABLE items (name text);');
    await fs.writeFile(path.join(dir, 'seed.sql'), "INSERT INTO items VALUES ('seeded');");
    const run = await cli([
      'run',
      '--migrations',
      path.join(dir, '001_items.sql'),
      '--seed',
      path.join(dir, 'seed.sql'),
      '--',
      'psql',
      '-Atc',
      'SELECT name FROM items',
    ]);
    expect(run.stdout.trim()).toBe('seeded');

    await fs.writeFile(path.join(dir, '002_broken.sql'), 'CREATE TABLE broken (;');
    const broken = await cli(['run', '--migrations', dir, '--', 'true']);
    expect(broken.status).toBe(1);
    expect(broken.stderr).toContain('002_broken.sql');
    expect(broken.stderr).toMatch(/^pglite-oxide: /);
  });

  it('serves a data directory until SIGINT, and the data is there for the next serve and for dump', async () => {
    const root = path.join(await tempRoot('pglite-oxide-cli-data-'), 'db');
    const first = await serve(['--data', root]);
    await queryRows(first.url, "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('kept on disk')");
    first.child.kill('SIGINT');
    expect(await first.exit).toBe(0);

    const second = await serve(['--data', root, '--port', '0']);
    expect(await queryRows(second.url, 'SELECT body FROM notes')).toEqual([{ body: 'kept on disk' }]);
    second.child.kill('SIGTERM');
    expect(await second.exit).toBe(0);

    const dump = await cli(['dump', '--data', root, '--', '--schema-only']);
    expect(dump.status).toBe(0);
    expect(dump.stdout).toContain('CREATE TABLE public.notes');
    const file = path.join(root, '..', 'dump.sql');
    expect((await cli(['dump', '--data', root, '-f', file])).status).toBe(0);
    expect(await fs.readFile(file, 'utf8')).toContain('kept on disk');
  });

  it('serves a throwaway database on a Unix socket that others cannot write to', async () => {
    const socketDir = path.join(await tempRoot('pglite-oxide-cli-socket-'), 'sock');
    const served = await serve(['--socket-dir', socketDir]);
    expect(served.url).toContain(`host=${encodeURIComponent(socketDir)}`);
    expect(statSync(socketDir).mode & 0o777).toBe(0o700);
    const { stdout } = await execFileAsync('psql', [
      '-h',
      socketDir,
      '-p',
      '5432',
      '-U',
      'postgres',
      'postgres',
      '-Atc',
      'SELECT 7',
    ]);
    expect(stdout.trim()).toBe('7');
    served.child.kill('SIGINT');
    expect(await served.exit).toBe(0);
  });

  it('stops on SIGINT while a statement runs, keeping what was committed, in every database', async () => {
    const root = path.join(await tempRoot('pglite-oxide-cli-busy-'), 'db');
    const first = await serve(['--data', root]);
    const inShop = (url: string) => url.replace(/\/postgres$/, '/shop');
    await queryRows(first.url, "CREATE TABLE kept (note text); INSERT INTO kept VALUES ('committed')");
    await queryRows(first.url, 'CREATE DATABASE shop');
    await queryRows(
      inShop(first.url),
      "CREATE TABLE items (name text); INSERT INTO items VALUES ('in shop')",
    );
    const client = new pg.Client(first.url);
    client.on('error', () => {});
    await client.connect();
    const running = client.query(
      'SELECT count(*) FROM generate_series(1, 30000) a, generate_series(1, 30000) b',
    );
    running.catch(() => {});
    first.child.kill('SIGINT');
    expect(await first.exit).toBe(0);
    await expect(running).rejects.toMatchObject({ code: '57P01' });
    const second = await serve(['--data', root]);
    expect(await queryRows(second.url, 'SELECT note FROM kept')).toEqual([{ note: 'committed' }]);
    expect(await queryRows(inShop(second.url), 'SELECT name FROM items')).toEqual([{ name: 'in shop' }]);
    second.child.kill('SIGTERM');
    expect(await second.exit).toBe(0);
  });

  it('takes the password from a file, and prints the URL without it', async () => {
    const file = path.join(await tempRoot('pglite-oxide-cli-password-'), 'password');
    await fs.writeFile(file, 'file pw\n', { mode: 0o600 });
    const served = await serve(['--password-file', file]);
    expect(served.url).toMatch(/^postgresql:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/postgres$/);
    const url = served.url.replace('***', encodeURIComponent('file pw'));
    expect(await queryRows(url, 'SELECT 6 * 7 AS n')).toEqual([{ n: 42 }]);
    await expect(queryRows(served.url.replace('***', 'wrong'), 'SELECT 1')).rejects.toMatchObject({
      code: '28P01',
    });
    served.child.kill('SIGINT');
    expect(await served.exit).toBe(0);
    expect(served.stderr()).not.toContain('file pw');
  });

  it('runs pgTAP files as tests with the test command, and fails saying which assertion and why', async () => {
    const dir = await tempRoot('pglite-oxide-cli-tap-');
    await fs.writeFile(path.join(dir, 'schema.sql'), 'CREATE TABLE notes (body text NOT NULL);');
    await fs.writeFile(
      path.join(dir, 'a_test.sql'),
      "SELECT plan(2);\nSELECT has_table('notes');\nSELECT col_not_null('notes', 'body');\nSELECT * FROM finish();",
    );
    const tapTest = (files: string) =>
      cli(['test', path.join(dir, files), '--migrations', path.join(dir, 'schema.sql')]);
    const passing = await tapTest('a_test.sql');
    expect(passing.status, passing.stderr).toBe(0);
    // TAP 14: a plan of files, each file a subtest with its own plan.
    expect(passing.stdout).toMatch(
      /^TAP version 14\n1\.\.1\n# Subtest: \S*a_test\.sql\n {4}1\.\.2\n {4}ok 1 - .*\n {4}ok 2 - Column notes\.body should be NOT NULL\nok 1 - \S*a_test\.sql$/m,
    );
    expect(passing.stdout).toContain('# files: 1 passed, 0 failed, 1 in all');

    await fs.writeFile(
      path.join(dir, 'b_test.sql'),
      "SELECT plan(1);\nSELECT is((SELECT count(*)::int FROM notes), 1, 'one note');\nSELECT * FROM finish();",
    );
    const junit = path.join(dir, 'reports', 'pgtap.xml');
    const failing = await cli([
      'test',
      path.join(dir, '*_test.sql'),
      '--migrations',
      path.join(dir, 'schema.sql'),
      '--junit',
      junit,
    ]);
    expect(failing.status).toBe(1);
    expect(failing.stdout).toMatch(
      / {4}not ok 1 - one note\n {6}---\n {6}message: \|\n {8}Failed test 1: "one note"\n {8}\s*have: 0\n {8}\s*want: 1\n(.*\n)* {6}\.\.\.\nnot ok 2 - \S*b_test\.sql/,
    );
    expect(failing.stdout).toContain('# files: 1 passed, 1 failed, 2 in all');
    const report = await fs.readFile(junit, 'utf8');
    expect(report).toMatch(/<testsuite name="\S*a_test\.sql" tests="2" failures="0" skipped="0">/);
    expect(report).toMatch(
      /<testcase classname="\S*b_test\.sql" name="1 - one note"><failure message="Failed test 1: &#34;one note&#34;">/,
    );
  });

  it('prebuilds the caches with init, and refuses a dump of a directory without a database', async () => {
    const init = await cli(['init']);
    expect(init.status).toBe(0);
    expect(init.stdout).toMatch(/^cluster: /m);
    const empty = await tempRoot('pglite-oxide-cli-empty-');
    const dump = await cli(['dump', '--data', empty]);
    expect(dump.status).toBe(2);
    expect(dump.stderr).toContain('holds no database');
  });
});
