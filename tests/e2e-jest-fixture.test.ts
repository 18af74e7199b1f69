import fs from 'node:fs/promises';
import path from 'node:path';
import { InteractiveRuntime, installAndInitIn } from 'pglite-oxide';
import { describe, expect, it } from 'vitest';
import { runCommand } from './helpers/child.js';
import { cleanEnv, installFixture, keptRoots, packPackage } from './helpers/fixture-project.js';
import { freshCacheDir, tempRoot } from './helpers/temp-root.js';
import { dataRows } from './helpers/wire.js';

const FAILING_TEST = `
import { Client } from 'pg';

test('a test that fails after writing', async () => {
  const client = new Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  await client.query("INSERT INTO audit_log (message) VALUES ('left for inspection')");
  await client.end();
  expect('this test').toBe('failing');
});
`;

const LEAKING_TEST = `
import { Pool } from 'pg';

const pool = new Pool({ connectionString: process.env.DATABASE_URL });

test('a transaction on one client while the pool answers another query', async () => {
  const c = await pool.connect();
  await c.query('BEGIN');
  await c.query("INSERT INTO accounts (email) VALUES ('d@d.d')");
  // Another client runs inside the open transaction, so it sees its row (PostgreSQL would not).
  const other = await pool.query("SELECT count(*)::int AS n FROM accounts WHERE email = 'd@d.d'");
  expect(other.rows[0].n).toBe(1);
  // Neither COMMIT nor release: the client is left checked out, in its transaction.
});

test('the next test starts clean', async () => {
  const { rows } = await pool.query("SELECT count(*)::int AS n FROM accounts WHERE email = 'd@d.d'");
  expect(rows[0].n).toBe(0);
});

test('the same with the client released in a finally', async () => {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query("INSERT INTO accounts (email) VALUES ('e@e.e')");
    const other = await pool.query("SELECT count(*)::int AS n FROM accounts WHERE email = 'e@e.e'");
    await c.query('COMMIT');
    expect(other.rows[0].n).toBe(1);
  } finally {
    c.release();
  }
});
`;

// The packed package, installed into a copy of fixtures/jest-app (CJS through ts-jest, one ES
// module file through @swc/jest), running that project's own jest command with two workers.
describe('fixtures/jest-app with the packed package', () => {
  it('passes its own suite, and keeps a failing test database for inspection on request', async () => {
    const project = await installFixture('jest-app', await packPackage(), ['vitest-app']);
    const cacheDir = await freshCacheDir();
    const keepDir = await tempRoot('pglite-oxide-kept-');
    const jest = (args: string[], env: NodeJS.ProcessEnv = {}) =>
      runCommand('npx', ['jest', ...args], {
        cwd: project,
        env: cleanEnv({ PGLITE_OXIDE_CACHE_DIR: cacheDir, ...env }),
        timeoutMs: 150_000,
      });

    const run = await jest([]);
    const output = run.output;
    expect(run.status, output).toBe(0);
    expect(output).toMatch(/Test Suites:\s+8 passed, 8 total/);
    expect(output).toMatch(/Tests:\s+15 passed, 15 total/);
    expect(keptRoots(output)).toEqual([]);

    // The same suite under isolation 'reset', on the cached template.
    const reset = await jest([], { FIXTURE_ISOLATION: 'reset' });
    expect(reset.status, reset.output).toBe(0);
    expect(reset.output).toMatch(/Tests:\s+15 passed, 15 total/);

    await fs.writeFile(path.join(project, 'tests', 'failing.test.ts'), FAILING_TEST);
    await fs.writeFile(
      path.join(project, 'jest.keep.config.cjs'),
      `module.exports = { ...require('./jest.config.cjs'), testEnvironmentOptions: { pgliteOxide: {
        ...require('./jest.config.cjs').testEnvironmentOptions.pgliteOxide, keepDir: ${JSON.stringify(keepDir)} } } };`,
    );
    const failing = await jest(['--config', 'jest.keep.config.cjs', 'tests/failing.test.ts'], {
      PGLITE_OXIDE_KEEP: 'on-failure',
    });
    const failingOutput = failing.output;
    expect(failing.status, failingOutput).toBe(1);
    expect(failingOutput).toContain('npx pglite-oxide serve --data');
    const [kept] = keptRoots(failingOutput);
    expect(kept?.startsWith(keepDir), failingOutput).toBe(true);

    // A test that leaves a client checked out of its own pool, in a transaction: another client
    // is answered inside it, the next test starts clean, and the run ends.
    await fs.writeFile(path.join(project, 'tests', 'leak.test.ts'), LEAKING_TEST);
    const leaking = await jest(['tests/leak.test.ts']);
    const leakingOutput = leaking.output;
    // Ended on its own, not by the timeout.
    expect(leaking.timedOut, leakingOutput).toBe(false);
    expect(leakingOutput).toMatch(/Tests:\s+3 passed, 3 total/);
    // The output names the test and what it left open.
    expect(leakingOutput).toMatch(
      /the test "tests\/leak.test.ts a transaction on one client while the pool answers another query" ended with 1 client inside a transaction \(rolled back with the test\): client \d+ \(user "postgres"\), in a transaction for [\d.]+ s, its last statement "INSERT INTO accounts/,
    );
    // At the file's end, what it left connected is named (its pool was never ended).
    expect(leakingOutput).toMatch(
      /tests\/leak.test.ts ended with 3 clients still connected: client \d+ \(user "postgres"\), idle for [\d.]+ s, its last statement "INSERT INTO accounts/,
    );
    // Those clients are closed when the run ends. Here the test file ran in Jest's own process, so
    // its pg clients hear of it there, unhandled: the run fails, and the error says why.
    expect(leaking.status, leakingOutput).toBe(1);
    expect(leakingOutput).toContain(
      'terminating connection: tests/leak.test.ts ended with this client still connected',
    );
    await fs.rm(path.join(project, 'tests', 'leak.test.ts'));

    const runtime = await InteractiveRuntime.start(await installAndInitIn(kept!));
    try {
      const rows = dataRows(await runtime.execInteractive('SELECT message FROM audit_log'));
      expect(rows).toEqual([['left for inspection']]);
      const extensions = "SELECT 'A'::citext = 'a', '[1,2]'::vector <-> '[1,3]', length(gen_random_bytes(4))";
      expect(dataRows(await runtime.execInteractive(extensions))).toEqual([['t', '1', '4']]);
    } finally {
      await runtime.close();
    }
  }, 600_000);
});
