import { prepareTemplate, type TemplateOptions } from '../template/prepare-template.js';
import { startEngineHost } from './host/engine-host.js';
import { checkIsolation, defaultKeepDir, type Isolation, type KeepPolicy, keepPolicy } from './isolation.js';
import type { TestFileConfig } from './test-file-database.js';

export interface TestRunOptions extends TemplateOptions {
  isolation?: Isolation;
  keep?: KeepPolicy;
  keepDir?: string;
  maxDatabases?: number;
  /**
   * How long a client waits for the engine while another client's transaction holds it, before
   * 55P03 with the holder named. Default 3 s: under a test timeout, so the test fails saying why.
   */
  queueTimeoutMs?: number;
}

/** Under the 5 s test timeouts of Vitest and Jest. */
const TEST_QUEUE_TIMEOUT_MS = 3_000;

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
): Promise<TestRun> {
  const {
    isolation: isolationOption,
    keep,
    keepDir,
    maxDatabases,
    queueTimeoutMs,
    ...templateOptions
  } = options;
  const isolation = checkIsolation(isolationOption);
  const config = { isolation, keep: keepPolicy(keep), keepDir: keepDir ?? defaultKeepDir() };
  const template = await prepareTemplate(templateOptions);
  const host = await startEngineHost({
    template,
    maxDatabases,
    spare: context.parallelFiles,
    queueTimeoutMs: queueTimeoutMs ?? TEST_QUEUE_TIMEOUT_MS,
  });
  return { config: { ...config, hostAddress: host.address }, close: () => host.close() };
}
