import { readdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { InteractiveRuntime, installAndInitIn } from 'pglite-oxide';
import { describe, expect, it } from 'vitest';
import { runCommand } from './helpers/child.js';
import { cleanEnv, installFixture, keptRoots, packPackage } from './helpers/fixture-project.js';
import { freshCacheDir } from './helpers/temp-root.js';
import { dataRows } from './helpers/wire.js';

const FAILING_TEST = `
import { test } from 'pglite-oxide/vitest';
import { expect } from 'vitest';

test('a test that fails after writing', async ({ db }) => {
  await db.query("INSERT INTO audit_log (message) VALUES ('left for inspection')");
  expect('this test').toBe('failing');
});
`;

const LEAKING_TEST = `
import { test } from 'pglite-oxide/vitest';
import { expect } from 'vitest';

test('a transaction on one client while the pool answers another query', async ({ pool }) => {
  const c = await pool.connect();
  await c.query('BEGIN');
  await c.query("INSERT INTO accounts (email) VALUES ('d@d.d')");
  // Another client runs inside the open transaction, so it sees its row (PostgreSQL would not).
  const other = await pool.query("SELECT count(*)::int AS n FROM accounts WHERE email = 'd@d.d'");
  expect(other.rows[0].n).toBe(1);
  // Neither COMMIT nor release: the client is left checked out.
});

test('the next test starts clean', async ({ pool }) => {
  const { rows } = await pool.query("SELECT count(*)::int AS n FROM accounts WHERE email = 'd@d.d'");
  expect(rows[0].n).toBe(0);
});

test('a client left inside its own transaction', async ({ db }) => {
  await db.query('BEGIN');
  await db.query("INSERT INTO accounts (email) VALUES ('f@f.f')");
});

test('starts clean after it too', async ({ db }) => {
  const { rows } = await db.query("SELECT count(*)::int AS n FROM accounts WHERE email = 'f@f.f'");
  expect(rows[0].n).toBe(0);
});
`;

const LEAKING_POOL_TEST = `
import pg from 'pg';
import { usePglite } from 'pglite-oxide/vitest';
import { describe, expect, it } from 'vitest';

describe('a suite that never ends its own pool', () => {
  const database = usePglite();
  let pool: pg.Pool;

  it('queries through it', async () => {
    pool = new pg.Pool({ connectionString: database.connectionString });
    pool.on('error', () => {});
    const { rows } = await pool.query("SELECT 'leaked pool' AS said");
    expect(rows[0].said).toBe('leaked pool');
  });
});
`;

const FAILING_TAP = `
BEGIN;
SELECT plan(2);
SELECT has_table('accounts');
SELECT is((SELECT count(*)::int FROM accounts), 3, 'the seed has three accounts');
SELECT * FROM finish();
ROLLBACK;
`;

const FAILING_TAP_TEST = `
import { pgtap } from 'pglite-oxide/vitest';

await pgtap('tests/db-broken/*.sql');
`;

const TWO_CLIENTS_TEST = `
import { test } from 'pglite-oxide/vitest';
import { expect } from 'vitest';

test('a transaction on one client while the pool answers another query', async ({ pool }) => {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query("INSERT INTO accounts (email) VALUES ('d@d.d')");
    const other = await pool.query("SELECT count(*)::int AS n FROM accounts WHERE email = 'd@d.d'");
    await c.query('COMMIT');
    // Inside the open transaction under isolation 'transaction': it sees the row.
    expect(other.rows[0].n).toBe(1);
  } finally {
    c.release();
  }
});
`;

// The packed package, installed into a copy of fixtures/vitest-app, running that project's own
// test command with its files in parallel: what a user's CI does.
describe('fixtures/vitest-app with the packed package', () => {
  it('passes its own suite in both isolations and pools, rebuilds the template when a migration changes, and keeps a failing test database on request', async () => {
    const project = await installFixture('vitest-app', await packPackage());
    const cacheDir = await freshCacheDir();
    const runSuite = (env: NodeJS.ProcessEnv, ...args: string[]) =>
      runCommand('npm', ['test', ...(args.length > 0 ? ['--', ...args] : [])], {
        cwd: project,
        env: cleanEnv({ PGLITE_OXIDE_CACHE_DIR: cacheDir, ...env }),
        timeoutMs: 150_000,
      });

    const transaction = await runSuite({});
    expect(transaction.status, transaction.output).toBe(0);
    expect(transaction.stdout).toMatch(/Test Files\s+12 passed \(12\)/);
    expect(transaction.stdout).toMatch(/Tests\s+31 passed \| 1 expected fail \(32\)/);
    const templates = () =>
      readdirSync(path.join(cacheDir, 'templates'), { withFileTypes: true }).filter((e) => e.isDirectory());
    expect(templates()).toHaveLength(1);

    // Isolation 'reset', in Vitest's worker-threads pool, reusing the cached template.
    const reset = await runSuite({ FIXTURE_ISOLATION: 'reset' }, '--pool=threads');
    expect(reset.status, reset.output).toBe(0);
    expect(reset.stdout).toMatch(/Tests\s+31 passed \| 1 expected fail \(32\)/);
    // Under 'none', test.concurrent tests of one file run at once on the file's database.
    const none = await runSuite({ FIXTURE_ISOLATION: 'none' }, 'tests/concurrent.test.ts');
    expect(none.status, none.output).toBe(0);
    expect(none.stdout).toMatch(/Tests\s+2 passed \(2\)/);
    expect(templates()).toHaveLength(1);

    // A failing test, with keep-on-failure: its database is written under the project (git told
    // to ignore it), the output says where and how to reopen it, and `pglite-oxide cache` lists it.
    const keepDir = path.join(project, '.pglite-oxide', 'kept');
    await fs.writeFile(path.join(project, 'tests', 'failing.test.ts'), FAILING_TEST);
    const failing = await runSuite({ PGLITE_OXIDE_KEEP: 'on-failure' }, 'tests/failing.test.ts');
    expect(failing.status, failing.output).not.toBe(0);
    expect(failing.output).toContain('npx pglite-oxide serve --data');
    const [kept] = keptRoots(failing.output);
    expect(kept?.startsWith(keepDir), failing.output).toBe(true);
    expect(await fs.readFile(path.join(project, '.pglite-oxide', '.gitignore'), 'utf8')).toContain('*');
    const listed = await runCommand('npx', ['pglite-oxide', 'cache'], {
      cwd: project,
      env: cleanEnv({ PGLITE_OXIDE_CACHE_DIR: cacheDir }),
      timeoutMs: 60_000,
    });
    expect(listed.status, listed.output).toBe(0);
    expect(listed.stdout).toMatch(
      /templates: 1, the most recently used first\n {2}[0-9a-f]+ {2}[\d.]+ MB {2}last used /,
    );
    expect(listed.stdout).toContain(`kept databases of failing tests: 1 (in ${keepDir})`);
    const runtime = await InteractiveRuntime.start(await installAndInitIn(kept!));
    try {
      expect(dataRows(await runtime.execInteractive('SELECT message FROM audit_log'))).toEqual([
        ['left for inspection'],
      ]);
      // Reopened, it has the extensions its migrations created.
      const extensions = "SELECT 'A'::citext = 'a', '[1,2]'::vector <-> '[1,3]', length(gen_random_bytes(4))";
      expect(dataRows(await runtime.execInteractive(extensions))).toEqual([['t', '1', '4']]);
    } finally {
      await runtime.close();
    }
    await fs.rm(path.join(project, 'tests', 'failing.test.ts'));

    // A failing pgTAP file: its failing assertion is a failing test, with pgTAP's diagnostics.
    await fs.mkdir(path.join(project, 'tests', 'db-broken'));
    await fs.writeFile(path.join(project, 'tests', 'db-broken', 'counts.sql'), FAILING_TAP);
    await fs.writeFile(path.join(project, 'tests', 'broken-tap.test.ts'), FAILING_TAP_TEST);
    const tap = await runSuite({}, 'tests/broken-tap.test.ts');
    expect(tap.status, tap.output).not.toBe(0);
    expect(tap.stdout, tap.output).toMatch(/Tests\s+1 failed \| 1 passed \(2\)/);
    expect(tap.output).toContain('2 - the seed has three accounts');
    expect(tap.output).toMatch(
      /not ok 2 - the seed has three accounts\s+Failed test 2: "the seed has three accounts"\s+have: 2\s+want: 3/,
    );
    await fs.rm(path.join(project, 'tests', 'db-broken'), { recursive: true });
    await fs.rm(path.join(project, 'tests', 'broken-tap.test.ts'));

    // Two clients in one test, released in a finally: answered at once under 'transaction';
    // under 'reset' the second waits for the first's transaction and gets 55P03 naming it.
    await fs.writeFile(path.join(project, 'tests', 'two-clients.test.ts'), TWO_CLIENTS_TEST);
    const twoClients = await runSuite({}, 'tests/two-clients.test.ts');
    expect(twoClients.status, twoClients.output).toBe(0);
    const twoClientsReset = await runSuite({ FIXTURE_ISOLATION: 'reset' }, 'tests/two-clients.test.ts');
    expect(twoClientsReset.status, twoClientsReset.output).not.toBe(0);
    expect(twoClientsReset.output).toMatch(
      /waited 3000 ms \(queueTimeoutMs\) for client \d+ \(user "postgres"\), in a transaction for [\d.]+ s, its last statement "INSERT INTO accounts/,
    );
    await fs.rm(path.join(project, 'tests', 'two-clients.test.ts'));

    // A test that leaves clients checked out of the pool (no finally): the run ends, the test
    // fails saying what it left, and the next test starts clean.
    // One that leaves a client in its own transaction: named, rolled back with the test. A file
    // that never ends its pool: the file and its client are named, and the run still ends.
    await fs.writeFile(path.join(project, 'tests', 'leak.test.ts'), LEAKING_TEST);
    await fs.writeFile(path.join(project, 'tests', 'leak-pool.test.ts'), LEAKING_POOL_TEST);
    const leaking = await runSuite({}, 'tests/leak.test.ts', 'tests/leak-pool.test.ts');
    expect(leaking.timedOut, leaking.output).toBe(false);
    expect(leaking.status, leaking.output).not.toBe(0);
    expect(leaking.output).toMatch(
      /left 1 client checked out of the pool \(last query: "INSERT INTO accounts/,
    );
    // Said under that test's own name in the runner's output, not under the next test's.
    expect(leaking.output).toMatch(
      /stderr \| tests\/leak.test.ts > a client left inside its own transaction\n[^\n]*the test "tests\/leak.test.ts > a client left inside its own transaction" ended with 1 client inside a transaction \(rolled back with the test\): client \d+ \(user "postgres"\), in a transaction for [\d.]+ s, its last statement "INSERT INTO accounts \(email\) VALUES \('f@f.f'\)", then disconnected/,
    );
    expect(leaking.output).toMatch(
      /tests\/leak-pool.test.ts ended with 1 client still connected: client \d+ \(user "postgres"\), idle for [\d.]+ s, its last statement "SELECT 'leaked pool' AS said"/,
    );
    expect(leaking.stdout, leaking.output).toMatch(/Tests\s+1 failed \| 4 passed \(5\)/);
    // One failure, reported once (an error thrown from a fixture's teardown Vitest reports twice).
    const leakHeaders = leaking.output.match(/FAIL {2}tests\/leak.test.ts > a transaction on one client/g);
    expect(leakHeaders, leaking.output).toHaveLength(1);
    await fs.rm(path.join(project, 'tests', 'leak.test.ts'));
    await fs.rm(path.join(project, 'tests', 'leak-pool.test.ts'));

    await fs.appendFile(
      path.join(project, 'migrations', '010_orders.sql'),
      '\nALTER TABLE orders ADD COLUMN note text;\n',
    );
    const rebuilt = await runSuite({});
    expect(rebuilt.status, rebuilt.output).toBe(0);
    expect(templates()).toHaveLength(2);
  }, 600_000);
});
