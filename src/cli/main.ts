#!/usr/bin/env node
// pglite-oxide: a real PostgreSQL 17 for CI jobs and local inspection, from the command line.
import { createRequire } from 'node:module';
import { Command, CommanderError, Option } from 'commander';
import { PgliteOxideError } from '../errors.js';
import { DEFAULT_CLIENT_TIMEOUTS } from '../proxy/options.js';
import { cacheClearCommand, cacheListCommand, cachePruneCommand } from './cache.js';
import { dumpCommand } from './dump.js';
import { initCommand } from './init.js';
import { runCommand } from './run.js';
import { serveCommand } from './serve.js';
import { testCommand } from './tap.js';

const { version } = packageJson();

/** Exit codes: 0 ok, 1 a failure at run time, 2 a usage error; `run` passes its command's on. */
const USAGE = 2;
const FAILURE = 1;

function program(): Command {
  const cli = new Command('pglite-oxide')
    .description(
      'A real PostgreSQL 17 without a server: serve a data directory, or run a command against an ephemeral database.',
    )
    .version(version)
    .exitOverride()
    // Every error this command prints starts with its name, commander's own too.
    .configureOutput({ outputError: (text, write) => write(`pglite-oxide: ${text.replace(/^error: /, '')}`) })
    .showHelpAfterError('(add --help for usage)');
  const migrations = () =>
    new Option('--migrations <path...>', '.sql files or directories applied in name order');
  const seed = () => new Option('--seed <path...>', '.sql files or directories applied after the migrations');
  const queueTimeout = () =>
    new Option(
      '--queue-timeout <ms>',
      `how long a client waits for the engine another client holds, before 55P03 naming it (default ${DEFAULT_CLIENT_TIMEOUTS.queueTimeoutMs})`,
    ).argParser(parseMilliseconds);
  const idleTimeout = () =>
    new Option(
      '--idle-in-transaction-timeout <ms>',
      `how long a client may hold the engine idle in a transaction while another waits, before 25P03 ends it (default ${DEFAULT_CLIENT_TIMEOUTS.idleInTransactionTimeoutMs})`,
    ).argParser(parseMilliseconds);

  cli
    .command('serve')
    .description('Serve a database to PostgreSQL clients until Ctrl+C.')
    .option(
      '--data <dir>',
      'a pglite-oxide root to open (created when missing); default: a fresh throwaway database',
    )
    .option('--host <address>', 'TCP address to listen on', '127.0.0.1')
    .option(
      '--port <number>',
      'TCP port (0 = any free port); with --socket-dir, the number in the socket name (default 5432)',
      parsePort,
      0,
    )
    .option('--socket-dir <dir>', 'serve a Unix socket <dir>/.s.PGSQL.<port> instead of TCP')
    .option(
      '--password-file <file>',
      'require the password in this file (needed off loopback); or set PGLITE_OXIDE_PASSWORD',
    )
    .option('--password <password>', 'the same, on the command line (visible to other users in ps)')
    .addOption(migrations())
    .addOption(seed())
    .addOption(queueTimeout())
    .addOption(idleTimeout())
    .action(serveCommand);

  cli
    .command('run')
    .description('Run a command against an ephemeral database: DATABASE_URL and PG* point at it.')
    .argument('<command...>', 'the command and its arguments (put them after --)')
    .addOption(migrations())
    .addOption(seed())
    .addOption(queueTimeout())
    .addOption(idleTimeout())
    .action(runCommand);

  cli
    .command('test')
    .description(
      'Run pgTAP files as tests, each on a database migrated and seeded afresh; exit 1 on a failure.',
    )
    .argument('<files...>', 'SQL files, directories, or patterns with a * in the file name (tests/db/*.sql)')
    .addOption(migrations())
    .addOption(seed())
    .option('--junit <file>', 'also write the results as JUnit XML, for CI')
    .action(testCommand);

  const cache = cli
    .command('cache')
    .description('List, prune or clear the cached templates and the databases kept for failing tests.');
  cache
    .command('list', { isDefault: true })
    .description('list them, with sizes and last use')
    .action(cacheListCommand);
  cache
    .command('prune')
    .description('remove the templates used least recently')
    .option('--keep <number>', 'templates to keep, the most recently used', parseCount, 8)
    .action(cachePruneCommand);
  cache
    .command('clear')
    .description("remove every template, and this project's kept databases")
    .action(cacheClearCommand);

  cli
    .command('init')
    .description('Prebuild the engine cluster and the migrated template caches (for a CI cache step).')
    .addOption(migrations())
    .addOption(seed())
    .action(initCommand);

  cli
    .command('dump')
    .description('pg_dump a data directory (the pg_dump built for the engine), to stdout or -f.')
    .requiredOption('--data <dir>', 'the pglite-oxide root to dump (stop any server on it first)')
    .option('-f, --file <file>', 'write the dump to this file')
    .argument('[pg_dump args...]', 'pg_dump options, after --')
    .action(dumpCommand);
  return cli;
}

/** This package's package.json: next to dist/ when built, two levels up from src/cli/. */
function packageJson(): { version: string } {
  const require = createRequire(import.meta.url);
  try {
    return require('../package.json') as { version: string };
  } catch {
    return require('../../package.json') as { version: string };
  }
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new CommanderError(USAGE, 'pglite-oxide.port', `invalid port: ${value}`);
  }
  return port;
}

function parseCount(value: string): number {
  const count = Number(value);
  if (!Number.isInteger(count) || count < 0) {
    throw new CommanderError(USAGE, 'pglite-oxide.count', `invalid number: ${value}`);
  }
  return count;
}

function parseMilliseconds(value: string): number {
  const ms = Number(value);
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new CommanderError(
      USAGE,
      'pglite-oxide.milliseconds',
      `not a positive number of milliseconds: ${value}`,
    );
  }
  return ms;
}

async function main(argv: string[]): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here too, with code 0.
      process.exitCode = error.exitCode === 0 ? 0 : USAGE;
      if (error.code.startsWith('pglite-oxide.')) console.error(`pglite-oxide: ${error.message}`);
      return;
    }
    console.error(`pglite-oxide: ${error instanceof PgliteOxideError ? error.message : describe(error)}`);
    process.exitCode = error instanceof PgliteOxideError && error.code === 'INVALID_INPUT' ? USAGE : FAILURE;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

void main(process.argv);
