export {
  ClusterCorruptedError,
  EngineCrashedError,
  EngineHostError,
  EngineInternalsChangedError,
  EngineStartError,
  InstallError,
  InvalidInputError,
  LockTimeoutError,
  PgDumpError,
  PgliteOxideError,
  type PgliteOxideErrorCode,
  RuntimeClosedError,
  TemplateBuildError,
} from './errors.js';
export { type ClusterCacheOptions, cachedCluster } from './install/cluster-cache.js';
export { type EngineInfo, engineInfo } from './install/engine-assets.js';
export {
  ensureCluster,
  type InstallOptions,
  installAndInit,
  installAndInitIn,
  installWithOptions,
} from './install/install.js';
export { PglitePaths } from './install/paths.js';
export type { ProgressEvent, ProgressListener } from './install/progress.js';
export { type AppId, packageCacheDir, projectDataDir } from './install/project-dirs.js';
export { assertWholeMessages, type PokeInput } from './protocol/frontend.js';
export { hexc } from './protocol/hexc.js';
export { type AuthMethod, type ProxyHandle, type ProxyOptions, startProxy } from './proxy/index.js';
export {
  closeDefaultRuntime,
  configureDefaultRuntime,
  defaultMount,
  defaultMountRoot,
  defaultRuntime,
  execInteractive,
  interactiveOne,
  type MountInfo,
  poke,
  prepareDefaultMount,
  runPgDump,
  wasmImport,
} from './runtime/default-runtime.js';
export { DEFAULT_ENGINE_SETTINGS, type EngineSettings } from './runtime/engine.js';
export { type SnapshotFailure, SnapshotRestoreError } from './runtime/engine-snapshot.js';
export { type StandardEnv, standardEnv } from './runtime/env.js';
export { InteractiveRuntime, type RuntimeOptions } from './runtime/interactive-runtime.js';
export {
  createResettableEngine,
  type MemoryEngineOptions,
  openMemoryEngine,
  type ResetPath,
  type ResetReport,
  ResettableEngine,
  type ResettableEngineOptions,
} from './runtime/memory-engine.js';
export {
  prepareTemplate,
  type Template,
  type TemplateOptions,
  type TemplateSetupContext,
} from './template/prepare-template.js';
export { readSqlFiles, type SqlFile } from './template/sources.js';
export { type EngineHost, type EngineHostOptions, startEngineHost } from './testing/host/engine-host.js';
export { type LeasedDatabase, leaseDatabase } from './testing/host/lease.js';
export { checkIsolation, type Isolation, type KeepPolicy } from './testing/isolation.js';
export {
  startTestRun,
  type TestRun,
  type TestRunContext,
  type TestRunOptions,
} from './testing/start-test-run.js';
export {
  type SuiteDatabase,
  type SuiteDatabaseOptions,
  startSuiteDatabase,
} from './testing/suite-database.js';
export { type TestFileConfig, TestFileDatabase, type TestOutcome } from './testing/test-file-database.js';
