// Who the engine session logged in as. PostgreSQL decides SET SESSION AUTHORIZATION (and
// set_config('session_authorization', ...), by any path: EXECUTE, functions, prepared statements)
// by the *authenticated* user, a static of miscinit.c that only login sets. The engine logs in as
// its own superuser and the proxy runs each client as its role on top of that, so without this
// module any client could make itself superuser again. Around each of a client's calls this
// module makes the authenticated user the client's login role, so that PostgreSQL itself refuses
// what it would refuse that role on a server, whatever SQL the client builds at run time. And
// pg_backend_pid() answers each client the pid it was given in BackendKeyData.
//
// The static is not exported: it is found once per engine start next to CurrentUserId (which the
// exported SetUserIdAndSecContext writes), and the candidate is proven by PostgreSQL's own check
// before it is used. When it cannot be found, the engine says so (enforcesLoginRoles) and the proxy
// refuses logins of roles other than the engine's own superusers. Private engine parts:
// tests/engine-internals.test.ts watches them.
import type { PGlite } from '@electric-sql/pglite';
import { EngineInternalsChangedError } from '../errors.js';
import { replaceBuiltin, STATIC_DATA_BYTES } from './builtin-functions.js';

interface IdentityModule {
  HEAPU8: Uint8Array;
  HEAPU32: Uint32Array;
  HEAP32: Int32Array;
  HEAP16: Int16Array;
  addFunction(fn: (fcinfo: number) => number, signature: string): number;
  ___memory_base: { value: number } | number;
  /** Byte address of MyProcPid, an exported static. */
  _MyProcPid: number;
  _malloc(size: number): number;
  _free(pointer: number): void;
  _GetUserIdAndSecContext(userId: number, secContext: number): void;
  _SetUserIdAndSecContext(userId: number, secContext: number): void;
}

/** A role oid that stands for the engine's own login: no client role to apply. */
export const ENGINE_ROLE = 0;

/** Whom a call runs for: the client's login role and the backend pid the client was given. */
export interface ClientIdentity {
  /**
   * The oid of the role the client logged in as; ENGINE_ROLE for a superuser, which PostgreSQL's
   * checks of the authenticated user treat as the engine's own (superuser) login.
   */
  role: number;
  /** The process id the client got in BackendKeyData: what pg_backend_pid() answers it. */
  pid: number;
}

/** How far from CurrentUserId the other user-id statics of miscinit.c lie (they are declared together). */
const NEIGHBOURHOOD_BYTES = 64;
/**
 * The linker keeps a module's statics near the exported ones (MyProcPid): this much around it is
 * looked at first, ~0.1 ms instead of ~30 ms for all static data.
 */
const NEAR_EXPORTED_BYTES = 64 * 1024;
/** An oid no role has, written into CurrentUserId for a moment to find it. */
const MARKER_OID = 0x7a3c51e9;
/** InvalidOid: no role, so not a superuser. */
const NO_ROLE = 0;

/** pg_backend_pid() in pg_proc. */
const PG_BACKEND_PID = { oid: 2026, name: 'pg_backend_pid', nargs: 0 };

/** Who one engine's session is, switchable around calls: its authenticated user and its pid. */
export class EngineIdentity {
  /** The client the running call is for, if any. */
  private client: ClientIdentity | undefined;
  /** Whether pg_backend_pid() answers each client's own pid. */
  readonly answersClientPids: boolean;

  private constructor(
    private readonly module: IdentityModule,
    /** Byte address of AuthenticatedUserId in the engine's memory; null when it was not found. */
    private readonly authenticatedUser: number | null,
    /** The oid the engine logged in as. */
    readonly engineOid: number,
  ) {
    // MyProcPid itself must stay: latches belong to it.
    const enginePid = module.HEAP32[module._MyProcPid >> 2]!;
    this.answersClientPids = replaceBuiltin(module, PG_BACKEND_PID, () => this.client?.pid ?? enginePid);
  }

  /** The identity of an engine, once installed; undefined when the engine lacks what it needs. */
  static of(engine: PGlite): EngineIdentity | undefined {
    return identities.get(engine);
  }

  /** The pid of the client the running call is for; 0 for the engine's own calls. */
  get clientPid(): number {
    return this.client?.pid ?? 0;
  }

  /** Whether calls can run as a client's login role (PostgreSQL then checks that role's rights). */
  get enforcesLoginRoles(): boolean {
    return this.authenticatedUser !== null;
  }

  /** Runs `call` for `client`: its role as the authenticated user, its pid as pg_backend_pid()'s. */
  runAs<T>(client: ClientIdentity, call: () => T): T {
    const authSlot = this.authenticatedUser === null ? -1 : this.authenticatedUser >> 2;
    const asRole = client.role !== ENGINE_ROLE && client.role !== this.engineOid;
    if (asRole) {
      if (authSlot < 0) throw new EngineInternalsChangedError("the session's authenticated user");
      this.module.HEAPU32[authSlot] = client.role;
    }
    this.client = client;
    try {
      return call();
    } finally {
      this.client = undefined;
      // A new view of the memory: it may have grown during the call.
      if (asRole) this.module.HEAPU32[authSlot] = this.engineOid;
    }
  }

  /** Finds and proves the engine's AuthenticatedUserId (see the top of this file). */
  static async install(engine: PGlite): Promise<EngineIdentity | undefined> {
    const module = (engine as unknown as { mod?: Partial<IdentityModule> }).mod;
    if (!module || !hasEntryPoints(module)) return undefined;
    const current = findCurrentUserId(module);
    const engineOid = current === null ? NO_ROLE : module.HEAPU32[current >> 2]!;
    let found: number | null = null;
    if (current !== null && engineOid !== NO_ROLE) {
      for (const candidate of neighbours(module, current, engineOid)) {
        if (await provesAuthenticatedUser(engine, module, candidate, engineOid)) {
          found = candidate;
          break;
        }
      }
    }
    const identity = new EngineIdentity(module, found, engineOid);
    identities.set(engine, identity);
    return identity;
  }
}

const identities = new WeakMap<PGlite, EngineIdentity>();

function hasEntryPoints(module: Partial<IdentityModule>): module is IdentityModule {
  return (
    module.HEAPU32 !== undefined &&
    typeof module.addFunction === 'function' &&
    module.___memory_base !== undefined &&
    typeof module._MyProcPid === 'number' &&
    typeof module._malloc === 'function' &&
    typeof module._free === 'function' &&
    typeof module._GetUserIdAndSecContext === 'function' &&
    typeof module._SetUserIdAndSecContext === 'function'
  );
}

/** CurrentUserId's address: the one static word that takes a marker written through the engine's own setter. */
function findCurrentUserId(module: IdentityModule): number | null {
  const scratch = module._malloc(8);
  try {
    module._GetUserIdAndSecContext(scratch, scratch + 4);
    const userId = module.HEAPU32[scratch >> 2]!;
    const secContext = module.HEAP32[(scratch + 4) >> 2]!;
    module._SetUserIdAndSecContext(MARKER_OID, secContext);
    try {
      const base = memoryBase(module);
      const near = module._MyProcPid;
      return (
        (near > base
          ? markerIn(module, near - NEAR_EXPORTED_BYTES, near + NEAR_EXPORTED_BYTES, scratch)
          : null) ?? markerIn(module, base, base + STATIC_DATA_BYTES, scratch)
      );
    } finally {
      module._SetUserIdAndSecContext(userId, secContext);
    }
  } finally {
    module._free(scratch);
  }
}

/** The one word between byte addresses `from` and `to` that holds the marker; null when none or several. */
function markerIn(module: IdentityModule, from: number, to: number, scratch: number): number | null {
  const heap = module.HEAPU32;
  let found: number | null = null;
  for (let slot = Math.max(0, from >> 2), end = Math.min(heap.length, to >> 2); slot < end; slot++) {
    if (heap[slot] !== MARKER_OID || slot === scratch >> 2) continue;
    if (found !== null) return null;
    found = slot << 2;
  }
  return found;
}

function memoryBase(module: IdentityModule): number {
  const base = module.___memory_base;
  return typeof base === 'number' ? base : base.value;
}

/** Words near CurrentUserId that hold the engine's login oid, nearest first. */
function neighbours(module: IdentityModule, current: number, engineOid: number): number[] {
  const found: number[] = [];
  for (let distance = 4; distance <= NEIGHBOURHOOD_BYTES; distance += 4) {
    for (const address of [current + distance, current - distance]) {
      if (module.HEAPU32[address >> 2] === engineOid) found.push(address);
    }
  }
  return found;
}

/**
 * Whether `address` is AuthenticatedUserId: with no role written there, PostgreSQL must refuse
 * to set the session authorization even to the engine's own user (42501); with the engine's oid
 * back, it allows it. The setting is local to the probe's own transaction.
 */
async function provesAuthenticatedUser(
  engine: PGlite,
  module: IdentityModule,
  address: number,
  engineOid: number,
): Promise<boolean> {
  const probe = `SELECT pg_catalog.set_config('session_authorization', session_user, true)`;
  module.HEAPU32[address >> 2] = NO_ROLE;
  let refused: boolean;
  try {
    await engine.query(probe);
    refused = false;
  } catch (error) {
    refused = (error as { code?: string })?.code === '42501';
  } finally {
    module.HEAPU32[address >> 2] = engineOid;
  }
  if (!refused) return false;
  try {
    await engine.query(probe);
    return true;
  } catch {
    return false;
  }
}
