import path from 'node:path';

const DIST = path.resolve('dist');

// The variants bench/suite.ts runs: each writes a Vitest config (plus an optional global setup)
// and the same tests, around a database handle `db` with `query(sql, params)`.

export interface Variant {
  name: string;
  label: string;
  /** Vitest (the default) or Jest, whose test files are CommonJS here. */
  runner?: 'vitest' | 'jest';
  needsNative?: boolean;
  config(schema: string): string;
  setup?(schema: string): string;
  /** Imports, file-level setup and the `test` to use, ending with a `db` in scope of each test. */
  prelude: string;
  /** The test function's parameter list (fixtures) and how `db` is found inside it. */
  testArgs: string;
  /** False for the row that runs the same tests without any SQL. */
  sql?: boolean;
}

const record = (runner: Variant['runner']) => `
${runner === 'jest' ? "const fs = require('node:fs');" : "import fs from 'node:fs';"}
const record = (kind, test) =>
  fs.appendFileSync(process.env.SUITE_TIMINGS, JSON.stringify({ file: FILE, kind, test, at: performance.timeOrigin + performance.now() }) + '\\n');
record('module', -1);
`;

const toolkit = (isolation: 'transaction' | 'reset' | 'none'): Variant => ({
  name: `toolkit-${isolation}`,
  label: `pglite-oxide, isolation '${isolation}'`,
  config: (schema) => `import { defineConfig } from 'vitest/config';
import { pgliteOxide } from 'pglite-oxide/vitest/config';
export default defineConfig({
  plugins: [pgliteOxide({ migrations: '${schema}/migrations', seed: '${schema}/seed', isolation: '${isolation}' })],
  test: { include: ['tests/**/*.test.ts'], testTimeout: 60000, hookTimeout: 120000 },
});
`,
  prelude: `import { test } from 'pglite-oxide/vitest';`,
  testArgs: '{ db }',
});

/** One in-memory PGlite per file, migrated and seeded there; TRUNCATE and reseed before each test. */
const handRolled: Variant = {
  name: 'hand-rolled',
  label: 'hand-rolled: PGlite per file + TRUNCATE',
  config: () => `import { defineConfig } from 'vitest/config';
export default defineConfig({ test: { include: ['tests/**/*.test.ts'], testTimeout: 60000, hookTimeout: 120000 } });
`,
  prelude: `import { PGlite } from '@electric-sql/pglite';
import { beforeAll, beforeEach, afterAll, test } from 'vitest';
const schemaDir = process.env.SUITE_SCHEMA;
const read = (dir) => fs.readdirSync(dir).sort().map((name) => fs.readFileSync(dir + '/' + name, 'utf8')).join('\\n');
let db;
beforeAll(async () => {
  db = await PGlite.create();
  await db.exec(read(schemaDir + '/migrations'));
});
beforeEach(async () => {
  await db.exec('TRUNCATE accounts, profiles, teams, memberships, products, tags, product_tags, orders, order_lines, audit_log RESTART IDENTITY CASCADE');
  await db.exec(read(schemaDir + '/seed'));
});
afterAll(() => db.close());`,
  testArgs: '',
};

/** Native PostgreSQL: a template database built once; each test copies it and drops the copy after. */
const nativeTemplates: Variant = {
  name: 'native-template',
  label: 'native PostgreSQL 15, CREATE DATABASE ... TEMPLATE per test',
  needsNative: true,
  config: () => `import { defineConfig } from 'vitest/config';
export default defineConfig({ test: { include: ['tests/**/*.test.ts'], globalSetup: ['./setup.ts'], testTimeout: 60000, hookTimeout: 120000 } });
`,
  setup: () => `import fs from 'node:fs';
import pg from 'pg';
export default async function setup() {
  const schemaDir = process.env.SUITE_SCHEMA;
  const read = (dir) => fs.readdirSync(dir).sort().map((name) => fs.readFileSync(dir + '/' + name, 'utf8')).join('\\n');
  const admin = new pg.Client({ connectionString: process.env.NATIVE_URL });
  await admin.connect();
  await admin.query('DROP DATABASE IF EXISTS suite_template');
  await admin.query('CREATE DATABASE suite_template');
  await admin.end();
  const template = new pg.Client({ connectionString: process.env.NATIVE_URL.replace(/\\/postgres$/, '/suite_template') });
  await template.connect();
  await template.query(read(schemaDir + '/migrations'));
  await template.query(read(schemaDir + '/seed'));
  await template.end();
}
`,
  prelude: `import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, test } from 'vitest';
let admin;
let db;
let name;
beforeAll(async () => {
  admin = new pg.Client({ connectionString: process.env.NATIVE_URL });
  await admin.connect();
});
beforeEach(async (context) => {
  name = 'suite_' + FILE + '_' + context.task.id.replace(/[^a-z0-9]/gi, '_').toLowerCase();
  await admin.query('CREATE DATABASE ' + name + ' TEMPLATE suite_template');
  db = new pg.Client({ connectionString: process.env.NATIVE_URL.replace(/\\/postgres$/, '/' + name) });
  await db.connect();
});
afterEach(async () => {
  await db.end();
  await admin.query('DROP DATABASE ' + name);
});
afterAll(() => admin.end());`,
  testArgs: '',
};

/** The Jest preset on the same engine host, isolation 'transaction'. */
const jestToolkit: Variant = {
  name: 'jest-transaction',
  label: "pglite-oxide on Jest, isolation 'transaction'",
  runner: 'jest',
  config: (schema) => `module.exports = {
  testEnvironment: ${JSON.stringify(`${DIST}/jest-environment.cjs`)},
  globalSetup: ${JSON.stringify(`${DIST}/jest-global-setup.cjs`)},
  globalTeardown: ${JSON.stringify(`${DIST}/jest-global-teardown.cjs`)},
  testEnvironmentOptions: { pgliteOxide: { migrations: '${schema}/migrations', seed: '${schema}/seed' } },
  testMatch: ['<rootDir>/tests/**/*.test.js'],
  testTimeout: 60000,
};
`,
  prelude: `const pg = require('pg');
let db;
beforeEach(async () => {
  db = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await db.connect();
});
afterEach(() => db.end());`,
  testArgs: '',
};

/** Vitest alone: the same files and tests doing no SQL, so what a database adds is visible. */
const noDatabase: Variant = {
  name: 'vitest-only',
  label: 'Vitest with no database (the same tests, no SQL)',
  sql: false,
  config: () => `import { defineConfig } from 'vitest/config';
export default defineConfig({ test: { include: ['tests/**/*.test.ts'], testTimeout: 60000, hookTimeout: 120000 } });
`,
  prelude: `import { test } from 'vitest';`,
  testArgs: '',
};

export const VARIANTS: Variant[] = [
  noDatabase,
  toolkit('transaction'),
  toolkit('reset'),
  toolkit('none'),
  jestToolkit,
  handRolled,
  nativeTemplates,
];

/** One test file: the variant's setup, then tests that insert and select across the schema. */
export function suiteFile(variant: Variant, file: number, tests: number): string {
  const body: string[] = [`const FILE = 'file${file}';`, record(variant.runner), variant.prelude];
  for (let i = 0; i < tests; i++) {
    if (variant.sql === false) {
      body.push(`
test('test ${i}', async () => {
  record('start', ${i});
  record('end', ${i});
});`);
      continue;
    }
    body.push(`
test('test ${i}', async (${variant.testArgs}) => {
  record('start', ${i});
  const email = 'user-${file}-${i}@example.com';
  await db.query('INSERT INTO accounts (email) VALUES ($1)', [email]);
  const account = await db.query('SELECT id FROM accounts WHERE email = $1', [email]);
  const order = await db.query('INSERT INTO orders (account_id) VALUES ($1) RETURNING id', [account.rows[0].id]);
  await db.query('INSERT INTO order_lines (order_id, product_id, quantity) VALUES ($1, 1, ${(i % 5) + 1})', [order.rows[0].id]);
  const total = await db.query('SELECT sum(l.quantity * p.price_cents)::int AS cents FROM order_lines l JOIN products p ON p.id = l.product_id WHERE l.order_id = $1', [order.rows[0].id]);
  if (total.rows[0].cents !== ${1200 * ((i % 5) + 1)}) throw new Error('unexpected total ' + total.rows[0].cents);
  record('end', ${i});
});`);
  }
  return body.join('\n');
}
