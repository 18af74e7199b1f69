// One ProcessUtility hook for what the engine keeps per client from utility statements (LISTEN
// and UNLISTEN, SET, RESET and SHOW): PostgreSQL calls it for each of them by any path (a Query,
// a DO block's EXECUTE, a function), so what it sees is what runs, not what a client's SQL text
// looks like. Where a statement's node lies in the PlannedStmt, and each kind's node tag, are
// found once per engine by running probe statements that name a probe object. Private engine
// parts: tests/engine-internals.test.ts watches them.
import type { PGlite } from '@electric-sql/pglite';

export interface UtilityModule {
  HEAPU8: Uint8Array;
  HEAPU32: Uint32Array;
  addFunction(fn: (...args: number[]) => unknown, signature: string): number;
  /** Address of ProcessUtility_hook. */
  _ProcessUtility_hook: number;
  _standard_ProcessUtility(...args: number[]): void;
}

/** A utility statement to find: `sql` runs it, and its node points to `name` at `nameOffset`. */
export interface UtilityProbe {
  sql: string;
  name: string;
  nameOffset: number;
}

/** Sees a statement of its kind: `node` is its parse node; `run` runs it (the hooks after). */
export type UtilityHandler = (node: number, run: () => void) => void;

/** How far into a PlannedStmt its utilityStmt is looked for. */
const PLANNED_STMT_WORDS = 48;
/** How much of a probe's node is kept for a caller to check its layout. */
const NODE_BYTES = 32;

export class UtilityHook {
  private readonly handlers = new Map<number, UtilityHandler>();

  private constructor(
    private readonly module: UtilityModule,
    /** Byte offset of utilityStmt in a PlannedStmt. */
    private readonly utility: number,
    /** Each probe's node tag and first bytes, in the order of the probes. */
    readonly probed: ReadonlyArray<{ tag: number; node: Uint8Array }>,
  ) {}

  /**
   * Runs the probes and puts the hook in front of the engine's; null when a probe's statement was
   * not found where every other one was (nothing is installed then).
   */
  static async install(
    engine: PGlite,
    module: UtilityModule,
    functionTable: WebAssembly.Table,
    probes: readonly UtilityProbe[],
  ): Promise<UtilityHook | null> {
    const hookSlot = module._ProcessUtility_hook >> 2;
    const before = module.HEAPU32[hookSlot]!;
    const previous =
      before === 0
        ? module._standard_ProcessUtility.bind(module)
        : (functionTable.get(before) as (...args: number[]) => void);
    const found: Array<{ utility: number; tag: number; node: Uint8Array }> = [];
    let probe: UtilityProbe | undefined;
    const looking = (...args: number[]) => {
      const seen = probe && findNode(module, args[0]!, probe);
      if (seen) found.push(seen);
      previous(...args);
    };
    module.HEAPU32[hookSlot] = module.addFunction(looking, 'viiiiiiii');
    try {
      for (probe of probes) await engine.exec(probe.sql);
    } finally {
      module.HEAPU32[hookSlot] = before;
    }
    const utility = found[0]?.utility;
    if (found.length !== probes.length || found.some((seen) => seen.utility !== utility)) return null;
    const hook = new UtilityHook(module, utility!, found);
    const dispatch = (...args: number[]) => {
      const words = module.HEAPU32;
      const node = words[(args[0]! + utility!) >> 2]!;
      const handler = node === 0 ? undefined : hook.handlers.get(words[node >> 2]!);
      if (handler) handler(node, () => previous(...args));
      else previous(...args);
    };
    module.HEAPU32[hookSlot] = module.addFunction(dispatch, 'viiiiiiii');
    return hook;
  }

  /** Has `handler` see every statement with node tag `tag`. */
  on(tag: number, handler: UtilityHandler): void {
    const before = this.handlers.get(tag);
    this.handlers.set(tag, before ? (node, run) => before(node, () => handler(node, run)) : handler);
  }

  /** The C string a node points to at `offset`; null for NULL. */
  stringAt(node: number, offset: number): string | null {
    const pointer = this.module.HEAPU32[(node + offset) >> 2]!;
    if (pointer === 0) return null;
    const bytes = this.module.HEAPU8;
    const end = bytes.indexOf(0, pointer);
    return Buffer.from(bytes.buffer, bytes.byteOffset + pointer, end - pointer).toString('utf8');
  }
}

/** Where the running probe's node is in the PlannedStmt at `planned`, if it is there. */
function findNode(
  module: UtilityModule,
  planned: number,
  probe: UtilityProbe,
): { utility: number; tag: number; node: Uint8Array } | null {
  const words = module.HEAPU32;
  const bytes = module.HEAPU8;
  const name = Buffer.from(`${probe.name}\0`, 'utf8');
  for (let word = 0; word < PLANNED_STMT_WORDS; word++) {
    const node = words[(planned >> 2) + word]!;
    if (node === 0 || node % 4 !== 0 || node + NODE_BYTES > bytes.length) continue;
    const pointer = words[(node + probe.nameOffset) >> 2]!;
    if (pointer === 0 || pointer + name.length > bytes.length) continue;
    if (name.equals(bytes.subarray(pointer, pointer + name.length)))
      return { utility: word * 4, tag: words[node >> 2]!, node: bytes.slice(node, node + NODE_BYTES) };
  }
  return null;
}
