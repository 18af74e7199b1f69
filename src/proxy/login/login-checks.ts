// What decides whether a client that authenticated may log in: the checks PostgreSQL makes after
// authentication, in its order, with its codes. What a role may do once in is PostgreSQL's own
// to decide: its units run as its login (see runtime/engine-identity.ts), which is why a role the
// engine cannot run as is refused here rather than served unchecked.
import type { Role } from './roles.js';

/** Why a client may not log in, as PostgreSQL says it. */
export interface LoginRefusal {
  code: string;
  message: string;
  detail?: string;
}

/** How many clients are logged in: all of them, those of one role, those of one database. */
export interface ConnectionCounts {
  all: number;
  role: number;
  database: number;
}

/** What else the login depends on besides the role. */
export interface LoginFacts {
  /** The database the client asked for. */
  database: string;
  /** Why the database the client asked for cannot be had, if it cannot. */
  databaseRefusal: LoginRefusal | null;
  /** The database's engine can run units as a login role other than a superuser. */
  rolesEnforced: boolean;
  /** The logged-in clients: all of them, those of the role, those of the database. */
  connections: ConnectionCounts;
  /** The proxy's maxConnections, and the database's connection limit (datconnlimit, -1 for none). */
  connectionLimits: { all: number; database: number };
}

/** Whether `user` (found as `role`, or not found) may log in: the role it logs in as, or why not. */
export function loginVerdict(
  user: string,
  role: Role | null,
  facts: LoginFacts,
): { admitted: Role } | { refused: LoginRefusal } {
  if (!role) return { refused: { code: '28000', message: `role "${user}" does not exist` } };
  const refusal = refusalOf(user, role, facts);
  return refusal ? { refused: refusal } : { admitted: role };
}

function refusalOf(user: string, role: Role, facts: LoginFacts): LoginRefusal | null {
  const { connections, connectionLimits } = facts;
  if (!role.canLogin) return { code: '28000', message: `role "${user}" is not permitted to log in` };
  if (!role.superuser && role.connectionLimit >= 0 && connections.role >= role.connectionLimit)
    return { code: '53300', message: `too many connections for role "${user}"` };
  if (facts.databaseRefusal) return facts.databaseRefusal;
  if (!role.mayConnect) {
    return {
      code: '42501',
      message: `permission denied for database "${facts.database}"`,
      detail: 'User does not have CONNECT privilege.',
    };
  }
  if (!role.superuser && connectionLimits.database >= 0 && connections.database >= connectionLimits.database)
    return { code: '53300', message: `too many connections for database "${facts.database}"` };
  if (!role.superuser && !facts.rolesEnforced) {
    return {
      code: '28000',
      message: `role "${user}" cannot log in: this engine cannot enforce the privileges of roles that are not superusers`,
      detail:
        "pglite-oxide could not install its check of the session's login role in the engine " +
        '(ENGINE_INTERNALS_CHANGED); reinstall dependencies so the pinned engine version is used.',
    };
  }
  const [forbidden] = role.forbiddenSettings;
  if (forbidden) return { code: '42501', message: `permission denied to set parameter "${forbidden}"` };
  if (connections.all >= connectionLimits.all)
    return { code: '53300', message: 'sorry, too many clients already' };
  return null;
}
