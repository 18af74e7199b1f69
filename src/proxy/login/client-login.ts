import { ProtocolViolationError } from '../../errors.js';
import { ENCRYPTION_REFUSED } from '../../protocol/backend-writer.js';
import { PASSWORD } from '../../protocol/extended-messages.js';
import { type FrontendMessage, printable } from '../../protocol/frontend-reader.js';
import { EngineWaitError } from '../database/engine-scheduler.js';
import type { DatabaseRefusal, ServedDatabase } from '../database/served-database.js';
import { ClientSettings } from '../session/session-state.js';
import type { AuthExchange } from './auth.js';
import { loginVerdict } from './login-checks.js';
import { engineRole, type Role } from './roles.js';
import { type ClientStartup, readStartupPacket } from './startup.js';

/** What logging in needs of the connection it is for. */
export interface LoginConnection {
  readonly id: number;
  /** The connection ended meanwhile. */
  readonly closed: boolean;
  write(bytes: Uint8Array): void;
  fatal(code: string, message: string, detail?: string): Promise<void>;
  /** A CancelRequest was its only message: it ends without a word. */
  endQuietly(): void;
  /** Nothing more is read from it: a wrong password is answered late. */
  stopReading(): void;
}

/** Who a client is once it is in. */
export interface Admission {
  database: ServedDatabase;
  user: string;
  role: Role;
  settings: ClientSettings;
}

/**
 * A client's way in, as PostgreSQL's: its startup message, the database it names (another's
 * engine is started when first asked for), its role there, the password exchange when the proxy
 * asks for one, and the checks that follow (role, LOGIN, database, room).
 */
export class ClientLogin {
  /** `startup`: waiting for the startup message; `auth`: for a password message; `refused`: nothing more is read. */
  state: 'startup' | 'auth' | 'refused' | 'in' = 'startup';
  private request: ClientStartup | null = null;
  private role: Role | null = null;
  /** Why the client cannot have the database it asked for; told once it has authenticated. */
  private refusal: DatabaseRefusal | null = null;
  /** The engine can run units as this role's login; if not, it is refused once it has authenticated. */
  private rolesEnforced = true;
  private auth: AuthExchange | null = null;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly connection: LoginConnection,
    /** The main database, until the client's startup names another. */
    private host: ServedDatabase,
    private readonly admit: (admission: Admission) => void,
  ) {
    this.armTimer();
  }

  /** The user the client named (empty before its startup message). */
  get user(): string {
    return this.request?.user ?? '';
  }

  get applicationName(): string {
    return this.request?.applicationName ?? '';
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  /** Reads the client's first packet; returns a promise while the database or role is looked up. */
  onStartupPacket(packet: Buffer): Promise<void> | undefined {
    const request = readStartupPacket(packet);
    switch (request.kind) {
      case 'encryption':
        this.connection.write(ENCRYPTION_REFUSED);
        return undefined;
      case 'cancel':
        if (request.processId !== null) this.host.cancel(request.processId, request.secretKey);
        this.connection.endQuietly();
        return undefined;
      case 'refused':
        void this.connection.fatal(request.error.code, request.error.message);
        return undefined;
    }
    if (request.negotiation) this.connection.write(request.negotiation);
    this.request = request;
    this.state = 'auth';
    // The main database and the engine's own user need no look-up (unless a password is asked
    // for: the role may have one of its own); its ALTER ROLE ... SET are as the book last read them.
    if (
      request.database === this.host.database &&
      request.user === this.host.user &&
      !this.host.authenticator
    ) {
      this.authenticate(engineRole(request.user, this.host.knownRole(request.user)?.defaults));
      return undefined;
    }
    return this.enter(request);
  }

  /** Finds the database the client asked for (starting its engine), then its role there. */
  private async enter(request: ClientStartup): Promise<void> {
    // Starting another database's engine takes a while: the startup timeout is not for that.
    clearTimeout(this.timer);
    const database = await this.host.open(request.database);
    if (this.connection.closed) return;
    if ('code' in database) this.refusal = database;
    else this.host = database;
    this.armTimer();
    const role = await this.lookUpRole(request.user, request.settings.keys());
    if (role && !role.superuser && !('code' in database)) {
      this.rolesEnforced = await database.gate.enforcesLoginRoles();
      if (this.connection.closed) return;
    }
    if (role !== undefined) this.authenticate(role);
  }

  private armTimer(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(
      () => this.connection.fatal('08P01', 'canceling authentication due to timeout'),
      this.host.limits.startupTimeoutMs,
    ).unref();
  }

  /**
   * The role as the database's copy of the roles has it (see ServedDatabase.loginRole). Undefined
   * when the client was told it cannot be had (reading the roles failed, or waited too long).
   */
  private async lookUpRole(user: string, settings: Iterable<string>): Promise<Role | null | undefined> {
    let role: Role | null;
    try {
      role = await this.host.loginRole(user, settings);
    } catch (error) {
      const [code, message] =
        error instanceof EngineWaitError
          ? [error.sqlstate, error.message]
          : ['XX000', `pglite-oxide proxy: ${(error as Error).message ?? error}`];
      void this.connection.fatal(code, message);
      return undefined;
    }
    return this.connection.closed ? undefined : role;
  }

  /** Starts the password exchange when the proxy asks for one; otherwise lets the client in. */
  private authenticate(role: Role | null): void {
    if (this.connection.closed) return;
    this.role = role;
    const authenticator = this.host.authenticator;
    if (authenticator) {
      this.auth = authenticator.exchange(this.user, role?.password ?? null);
      this.connection.write(this.auth.start());
      return;
    }
    this.letIn();
  }

  onAuthMessage(message: FrontendMessage): undefined {
    if (message.type !== PASSWORD || !this.auth) {
      throw new ProtocolViolationError(`expected a password message, got '${printable(message.type)}'`);
    }
    const step = this.auth.step(message.body);
    // As PostgreSQL: a role that does not exist fails as a wrong password would, so that a
    // client cannot tell which roles exist.
    const failed = 'failed' in step ? step.failed : 'done' in step && !this.role ? 'no such role' : null;
    if (failed) {
      this.host.warn(`client ${this.connection.id}: password authentication failed: ${failed}`);
      // Answered late, so guessing passwords is slow (as PostgreSQL's auth_delay does).
      this.state = 'refused';
      this.connection.stopReading();
      setTimeout(
        () => void this.connection.fatal('28P01', `password authentication failed for user "${this.user}"`),
        this.host.limits.authFailureDelayMs,
      ).unref();
      return undefined;
    }
    if ('reply' in step && step.reply) this.connection.write(step.reply);
    if ('done' in step) {
      this.auth = null;
      this.letIn();
    }
    return undefined;
  }

  /** Checks role, database and room, then hands the client over to its database. */
  private letIn(): void {
    const request = this.request!;
    const verdict = loginVerdict(request.user, this.role, {
      database: request.database,
      databaseRefusal: this.refusal,
      rolesEnforced: this.rolesEnforced,
      ...this.host.connections(request.user),
    });
    if ('refused' in verdict) {
      const { code, message, detail } = verdict.refused;
      void this.connection.fatal(code, message, detail);
      return;
    }
    const role = verdict.admitted;
    clearTimeout(this.timer);
    this.state = 'in';
    // A client of another role than the engine's runs its units as that role; its
    // application_name is its own setting too (current_setting() and pg_stat_activity read it).
    const asRole = role.name === this.host.user ? [] : [['session_authorization', role.name] as const];
    const named = request.applicationName ? [['application_name', request.applicationName] as const] : [];
    this.admit({
      database: this.host,
      user: request.user,
      role,
      // As a server: ALTER ROLE/DATABASE ... SET first, the client's startup parameters over them.
      settings: new ClientSettings(new Map([...role.defaults, ...request.settings, ...named, ...asRole])),
    });
  }
}
