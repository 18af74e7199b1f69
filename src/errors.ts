/** Every error this package throws on purpose is a PgliteOxideError with a stable `code`. */
export type PgliteOxideErrorCode =
  | 'INSTALL_FAILED'
  | 'LOCK_TIMEOUT'
  | 'CLUSTER_CORRUPTED'
  | 'ENGINE_START_FAILED'
  | 'ENGINE_CRASHED'
  | 'RUNTIME_CLOSED'
  | 'INVALID_INPUT'
  | 'PG_DUMP_FAILED'
  | 'ENGINE_INTERNALS_CHANGED'
  | 'PROTOCOL_VIOLATION'
  | 'PROXY_START_FAILED'
  | 'TEMPLATE_BUILD_FAILED'
  | 'SNAPSHOT_RESTORE_FAILED'
  | 'ENGINE_HOST_FAILED';

/** Marks this package's error classes, in whichever copy of it they were made. */
const ERROR_CLASS = Symbol.for('pglite-oxide.error-class');

export class PgliteOxideError extends Error {
  readonly code: PgliteOxideErrorCode;

  constructor(code: PgliteOxideErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }

  // A getter, not a static field: the CommonJS build would rename a class with static fields.
  static get [ERROR_CLASS](): boolean {
    return true;
  }

  /**
   * `instanceof` that holds across the package's ES module and CommonJS copies (a process may
   * load both): an error of the other copy's class of the same name counts.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class instanceof asks about, a subclass too.
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
    for (
      let proto = value === null ? null : Object.getPrototypeOf(value);
      proto;
      proto = Object.getPrototypeOf(proto)
    ) {
      const made = proto.constructor as { name?: string; [ERROR_CLASS]?: boolean } | undefined;
      // biome-ignore lint/complexity/noThisInStatic: as above.
      if (made?.[ERROR_CLASS] && made.name === this.name) return true;
    }
    return false;
  }
}

/** Installing the runtime or restoring the cluster failed; nothing half-written is left in use. */
export class InstallError extends PgliteOxideError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INSTALL_FAILED', message, options);
  }
}

/** Another process held the install lock for longer than we were willing to wait. */
export class LockTimeoutError extends PgliteOxideError {
  constructor(
    readonly lockPath: string,
    options?: { cause?: unknown },
  ) {
    super(
      'LOCK_TIMEOUT',
      `Timed out waiting for the lock ${lockPath}; another process is installing there.`,
      options,
    );
  }
}

/** The data directory exists but the engine cannot use it. */
export class ClusterCorruptedError extends PgliteOxideError {
  constructor(
    readonly pgdata: string,
    readonly pgroot: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(
      'CLUSTER_CORRUPTED',
      `The PostgreSQL data directory ${pgdata} is not usable: ${reason}. ` +
        `To start over, remove ${pgroot} (this deletes its data) and install again.`,
      options,
    );
  }
}

export class EngineStartError extends PgliteOxideError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENGINE_START_FAILED', message, options);
  }
}

/** The engine died (a WASM trap or exit) while running a call; the next call restarts it. */
export class EngineCrashedError extends PgliteOxideError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENGINE_CRASHED', message, options);
  }
}

/** The engine was stopped on purpose (a statement that would not stop) and a new one started. */
export class EngineReplacedError extends EngineCrashedError {}

export class RuntimeClosedError extends PgliteOxideError {
  constructor() {
    super('RUNTIME_CLOSED', 'This runtime has been closed.');
  }
}

export class InvalidInputError extends PgliteOxideError {
  constructor(message: string) {
    super('INVALID_INPUT', message);
  }
}

export class PgDumpError extends PgliteOxideError {
  constructor(
    message: string,
    readonly exitCode: number,
    readonly stderr: string,
  ) {
    super('PG_DUMP_FAILED', message);
  }
}

/** A private part of the engine we rely on is not where it was; upgrade the package or report it. */
export class EngineInternalsChangedError extends PgliteOxideError {
  constructor(what: string) {
    super(
      'ENGINE_INTERNALS_CHANGED',
      `The installed engine no longer has ${what}. pglite-oxide pins its engine version; ` +
        'reinstall dependencies so the pinned version is used.',
    );
  }
}

/** A client sent bytes that are not valid frontend protocol; its connection is closed with 08P01. */
export class ProtocolViolationError extends PgliteOxideError {
  constructor(message: string) {
    super('PROTOCOL_VIOLATION', message);
  }
}

/** The proxy could not start listening (address in use, socket directory unusable, ...). */
export class ProxyStartError extends PgliteOxideError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PROXY_START_FAILED', message, options);
  }
}

/** Building a migrated template failed; the message names the file and the PostgreSQL error. */
export class TemplateBuildError extends PgliteOxideError {
  constructor(
    message: string,
    readonly file?: string,
    options?: { cause?: unknown },
  ) {
    super('TEMPLATE_BUILD_FAILED', message, options);
  }

  /**
   * The error of a migration or seed file, with the line it arose on (from the error's position
   * within the statement that begins at `offset` in the file), PostgreSQL's SQLSTATE, DETAIL and
   * HINT.
   */
  static fromSql(kind: string, file: { path: string; sql: string }, failure: SqlFailure): TemplateBuildError {
    const { error, offset } = failure;
    const position = Number(error.position ?? 0);
    const line =
      offset + position > 0 ? file.sql.slice(0, offset + Math.max(position, 1)).split('\n').length : 0;
    const where = line > 0 ? ` (line ${line})` : '';
    const sqlstate = error.code ? ` [SQLSTATE ${error.code}]` : '';
    const more = [error.detail && `DETAIL: ${error.detail}`, error.hint && `HINT: ${error.hint}`].filter(
      Boolean,
    );
    return new TemplateBuildError(
      `The ${kind} ${file.path}${where} failed: ${error.message ?? String(error)}${sqlstate}` +
        more.map((text) => `\n  ${text}`).join(''),
      file.path,
      { cause: error },
    );
  }
}

/** An error as PostgreSQL's clients give it (pg, PGlite): its message and fields. */
export interface SqlError {
  message?: string;
  code?: string;
  /** Where in the statement sent, 1-based, as a number in text. */
  position?: string;
  detail?: string;
  hint?: string;
}

/** An error of running a file's SQL, and where the statement it arose in begins in the file. */
export interface SqlFailure {
  error: SqlError;
  offset: number;
}

/** The engine host that serves test files their databases failed, or could not be reached. */
export class EngineHostError extends PgliteOxideError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENGINE_HOST_FAILED', message, options);
  }
}

/** The message of anything thrown: an Error's, an object's `message`, or the value as text. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String((error as { message?: string })?.message ?? error);
}
