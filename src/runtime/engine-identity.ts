// Who the engine session logged in as. PostgreSQL decides SET SESSION AUTHORIZATION (and
// set_config('session_authorization', ...), by any path: EXECUTE, functions, prepared statements)
// by the *authenticated* user, a static of miscinit.c that only login sets. The engine logs in as
// its own superuser and the proxy runs each client as its role on top of that, so without this
// module any client could make itself superuser again. Around each of a client's calls this
// module makes the authenticated user the client's login role, so that PostgreSQL itself refuses
// what it would refuse that role on a server, whatever SQL the client builds at run time.
//
// The static is not exported: it is found once per engine start next to CurrentUserId (which the
// exported SetUserIdAndSecContext writes), and the candidate is proven by PostgreSQL's own check
// before it is used. When it cannot be found, the engine says so (identityGuarded) and the proxy
// refuses logins of roles other than the engine's own superusers. Private engine parts:
// tests/engine-internals.test.ts watches them.
import type { PGlite } from '@electric-sql/pglite';

interface IdentityModule {
  HEAPU32: Uint32Array;
  HEAP32: Int32Array;
  ___memory_base: { value: number } | number;
  _malloc(size: number): number;
  _free(pointer: number): void;
  _GetUserIdAndSecContext(userId: number, secContext: number): void;
  _SetUserIdAndSecContext(userId: number, secContext: number): void;
}

/** Stands for "the engine's own login" in calls: no client identity to apply. */
export const ENGINE_IDENTITY = 0;
/** How far from CurrentUserId the other user-id statics of miscinit.c lie (they are declared together). */
const NEIGHBOURHOOD_BYTES = 64;
/** Where static data can lie: the module's data and bss end well below this in every build seen. */
const STATIC_DATA_BYTES = 16 * 1024 * 1024;
/** An oid no role has, written into CurrentUserId for a moment to find it. */
const MARKER_OID = 0x7a3c51e9;
/** InvalidOid: no role, so not a superuser. */
const NO_ROLE = 0;

/** The authenticated user of one engine, switchable around calls. */
export class EngineIdentity {
  private constructor(
    private readonly module: IdentityModule,
    /** Byte address of AuthenticatedUserId in the engine's memory. */
    private readonly address: number,
    /** The oid the engine logged in as. */
    readonly engineOid: number,
  ) {}

  /** The identity guard of an engine, once installed; undefined when it could not be. */
  static of(engine: PGlite): EngineIdentity | undefined {
    return guards.get(engine) ?? undefined;
  }

  /** Runs `call` with `roleOid` as the authenticated user (ENGINE_IDENTITY: the engine's own). */
  runAs<T>(roleOid: number, call: () => T): T {
    if (roleOid === ENGINE_IDENTITY || roleOid === this.engineOid) return call();
    const slot = this.address >> 2;
    this.module.HEAPU32[slot] = roleOid;
    try {
      return call();
    } finally {
      this.module.HEAPU32[slot] = this.engineOid;
    }
  }

  /** Finds and proves the engine's AuthenticatedUserId; null when it cannot (see the top of this file). */
  static async install(engine: PGlite): Promise<EngineIdentity | null> {
    const module = (engine as unknown as { mod?: Partial<IdentityModule> }).mod;
    if (!module || !hasEntryPoints(module)) {
      guards.set(engine, null);
      return null;
    }
    const current = findCurrentUserId(module);
    const engineOid = current === null ? NO_ROLE : module.HEAPU32[current >> 2]!;
    let found: EngineIdentity | null = null;
    if (current !== null && engineOid !== NO_ROLE) {
      for (const candidate of neighbours(module, current, engineOid)) {
        if (await provesAuthenticatedUser(engine, module, candidate, engineOid)) {
          found = new EngineIdentity(module, candidate, engineOid);
          break;
        }
      }
    }
    guards.set(engine, found);
    return found;
  }
}

const guards = new WeakMap<PGlite, EngineIdentity | null>();

function hasEntryPoints(module: Partial<IdentityModule>): module is IdentityModule {
  return (
    module.HEAPU32 !== undefined &&
    module.___memory_base !== undefined &&
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
    let found: number | null = null;
    try {
      const heap = module.HEAPU32;
      const base = memoryBase(module);
      const end = Math.min(heap.length, (base + STATIC_DATA_BYTES) >> 2);
      for (let slot = base >> 2; slot < end; slot++) {
        if (heap[slot] !== MARKER_OID || slot === scratch >> 2) continue;
        if (found !== null) return null;
        found = slot << 2;
      }
    } finally {
      module._SetUserIdAndSecContext(userId, secContext);
    }
    return found;
  } finally {
    module._free(scratch);
  }
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
