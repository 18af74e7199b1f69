import { checkOptionNames } from '../option-names.js';
import {
  prepareTemplate,
  TEMPLATE_OPTION_NAMES,
  type TemplateOptions,
} from '../template/prepare-template.js';
import { startEngineHost } from './host/engine-host.js';
import { checkIsolation, defaultKeepDir, type Isolation, type KeepPolicy, keepPolicy } from './isolation.js';
import type { TestFileConfig } from './test-file-database.js';

export interface TestRunOptions extends TemplateOptions {
  /**
   * `transaction` (default): each test runs in a transaction rolled back after it. `reset`: each
   * test starts from the exact template state (sequences too). `none`: the file's tests share it.
   */
  isolation?: Isolation;
  /** `on-failure` writes a failing test's database to disk (PGLITE_OXIDE_KEEP overrides). */
  keep?: KeepPolicy;
  /** Where kept databases go. Default: `.pglite-oxide/kept` under the working directory (the project). */
  keepDir?: string;
  /** Most test databases alive at once. Default: CPU count + 1. */
  maxDatabases?: number;
  /**
   * Memory the test databases may take together, in MB (~128 MB each): past it, a test file
   * waits for a database to be released, with a warning. Default: half of the machine's memory.
   */
  memoryBudgetMb?: number;
  /**
   * How long a client waits for the engine while another client's transaction holds it, before
   * 55P03 with the holder named. Default 3 s: under a test timeout, so the test fails saying why.
   */
  queueTimeoutMs?: number;
  /**
   * How long a client may sit idle inside a transaction that holds the engine (isolation
   * `reset`/`none`, or a failed transaction) while another waits, before 25P03 ends it. Default
   * 10 s: past the 5 s test timeouts, so a test fails on its own timeout first.
   */
  idleInTransactionTimeoutMs?: number;
}

const RUN_OPTION_NAMES = {
  isolation: true,
  keep: true,
  keepDir: true,
  maxDatabases: true,
  memoryBudgetMb: true,
  queueTimeoutMs: true,
  idleInTransactionTimeoutMs: true,
} satisfies Record<Exclude<keyof TestRunOptions, keyof TemplateOptions>, true>;

/** Every option a test run takes (TestRunOptions), by name. */
export const TEST_RUN_OPTION_NAMES: readonly string[] = [
  ...TEMPLATE_OPTION_NAMES,
  ...Object.keys(RUN_OPTION_NAMES),
];

export interface TestRunContext {
  /** How many test files the runner runs at once: that many databases are started ahead. */
  parallelFiles?: number;
}

export interface TestRun {
  /** What each test file needs to lease its database. */
  config: TestFileConfig;
  close(): Promise<void>;
}

/**
 * The global setup both presets share: builds (or reuses) the migrated template, then starts the
 * engine host that serves every test file of the run its database.
 */
export async function startTestRun(
  options: TestRunOptions = {},
  context: TestRunContext = {},
  /** Where the options were written, for the message about a misspelled one. */
  where = 'the pglite-oxide options',
): Promise<TestRun> {
  checkOptionNames(options, TEST_RUN_OPTION_NAMES, where);
  const {
    isolation: isolationOption,
    keep,
    keepDir,
    maxDatabases,
    memoryBudgetMb,
    queueTimeoutMs,
    idleInTransactionTimeoutMs,
    ...templateOptions
  } = options;
  const isolation = checkIsolation(isolationOption);
  const config = { isolation, keep: keepPolicy(keep), keepDir: keepDir ?? defaultKeepDir() };
  const template = await prepareTemplate(templateOptions);
  const host = await startEngineHost({
    template,
    maxDatabases,
    memoryBudgetMb,
    spare: context.parallelFiles,
    timeouts: { queueTimeoutMs, idleInTransactionTimeoutMs },
  });
  return { config: { ...config, hostAddress: host.address }, close: () => host.close() };
}
