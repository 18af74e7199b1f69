// Session settings per client. On a server each backend has its own: a SET, RESET or set_config()
// by any path (a DO block's EXECUTE, a function) changes the caller's alone, and a custom setting
// (`app.tenant`) another backend set does not exist in this one: current_setting('app.tenant',
// true) is NULL and SHOW fails, which row-level security policies rely on. The engine has one
// session for all the proxy's clients, and the proxy brings it to each client's settings when it
// passes from one client to another. For that it must know when a client changed its settings
// and which custom settings it has, whatever SQL did it; so the engine tells it:
//
// - the utility hook sees each SET and RESET (not SET LOCAL, which ends with the transaction), and
//   set_config() is wrapped: the client's settings version in the client table changes, and the
//   proxy reads the client's settings back after the unit;
// - each custom setting's name goes into the client table, for the proxy to read it by name
//   (pg_settings does not list custom ones), and is kept for the client that set it;
// - current_setting() and SHOW of a custom setting the calling client never set answer as a
//   server would for one that does not exist, even though another client made it exist here.
//
// The engine's own calls, and an engine no proxy serves, are PostgreSQL's alone. Private engine
// parts: tests/engine-internals.test.ts watches them.
import type { PGlite } from '@electric-sql/pglite';
import {
  argument,
  argumentIsNull,
  type BuiltinFunction,
  FCINFO_ISNULL,
  textArgument,
  wrapBuiltin,
} from './builtin-functions.js';
import type { ClientTableHolder } from './client-table.js';
import { ERROR, REPORTING_ENTRY_POINTS, type ReportingModule, report } from './engine-errors.js';
import { withCString } from './engine-strings.js';
import type { UtilityHook, UtilityProbe } from './utility-hook.js';

interface SettingsModule extends ReportingModule {
  HEAPU32: Uint32Array;
  HEAP16: Int16Array;
  addFunction(fn: (...args: number[]) => unknown, signature: string): number;
  UTF8ToString(pointer: number): string;
  _text_to_cstring(text: number): number;
  _pfree(pointer: number): void;
  _find_option(name: number, createPlaceholders: number, skipErrors: number, elevel: number): number;
}

const ENTRY_POINTS = [
  ...REPORTING_ENTRY_POINTS,
  'addFunction',
  'UTF8ToString',
  '_text_to_cstring',
  '_pfree',
  '_find_option',
] as const;

const SET_CONFIG: BuiltinFunction = { oid: 2078, name: 'set_config_by_name', nargs: 3 };
const CURRENT_SETTING: BuiltinFunction = { oid: 2077, name: 'show_config_by_name', nargs: 1 };
const CURRENT_SETTING_MISSING_OK: BuiltinFunction = {
  oid: 3294,
  name: 'show_config_by_name_missing_ok',
  nargs: 2,
};

const PROBE_SETTING = 'pglite_oxide.probe';
/** VariableSetStmt: { NodeTag type; VariableSetKind kind; char *name; ... bool is_local }. */
const SET_KIND = 4;
const SET_NAME = 8;
/** VariableShowStmt: { NodeTag type; char *name }. */
const SHOW_NAME = 4;
/** VariableSetKind: VAR_SET_MULTI (SET TRANSACTION ..., which ends with the transaction), VAR_RESET. */
const VAR_SET_MULTI = 3;
const VAR_RESET = 4;
/** The statements the utility hook finds for this module: SET, SET LOCAL, RESET, SHOW. */
export const SETTING_PROBES: UtilityProbe[] = [
  { sql: `SET ${PROBE_SETTING} = 'on'`, name: PROBE_SETTING, nameOffset: SET_NAME },
  { sql: `BEGIN; SET LOCAL ${PROBE_SETTING} = 'on'; COMMIT`, name: PROBE_SETTING, nameOffset: SET_NAME },
  { sql: `RESET ${PROBE_SETTING}`, name: PROBE_SETTING, nameOffset: SET_NAME },
  { sql: `SHOW ${PROBE_SETTING}`, name: PROBE_SETTING, nameOffset: SHOW_NAME },
];
/** struct config_generic: { const char *name; ...; int flags (at 20) }. */
const CONFIG_NAME = 0;
const CONFIG_FLAGS = 20;
/** GUC_CUSTOM_PLACEHOLDER: a custom setting no module defines. */
const CUSTOM_PLACEHOLDER = 0x200;

/** Engines whose settings are kept per client. */
const installed = new WeakSet<PGlite>();

/** Whether `engine` keeps session settings per client (see installClientSettings). */
export function keepsClientSettings(engine: PGlite): boolean {
  return installed.has(engine);
}

/** The custom settings each client has in the engine (set by it, by any path), in lower case. */
class CustomSettings {
  private readonly byClient = new Map<number, Set<string>>();

  constructor(private readonly clients: ClientTableHolder) {}

  has(pid: number, name: string): boolean {
    return this.byClient.get(pid)?.has(name.toLowerCase()) ?? false;
  }

  /**
   * Notes that client `pid` set `name`, and lists the name for the proxy; false when the client
   * table has no room left for it.
   */
  set(pid: number, name: string): boolean {
    const lower = name.toLowerCase();
    if (!lower.includes('.') || this.has(pid, lower)) return true;
    if (!this.clients.table?.addSettingName(lower)) return false;
    if (!this.byClient.has(pid)) this.forgetLeftClients();
    const own = this.byClient.get(pid) ?? new Set<string>();
    own.add(lower);
    this.byClient.set(pid, own);
    return true;
  }

  private forgetLeftClients(): void {
    const table = this.clients.table;
    if (!table) return;
    for (const pid of this.byClient.keys()) if (!table.find(pid)) this.byClient.delete(pid);
  }
}

/**
 * Keeps session settings per client in `engine` (see the top of this file); false when it cannot
 * be installed (the engine then serves no role but its superusers, see enforcesLoginRoles).
 * `probed`: what the utility hook found of SETTING_PROBES.
 */
export function installClientSettings(
  engine: PGlite,
  holder: ClientTableHolder,
  callerPid: () => number,
  functionTable: WebAssembly.Table | null,
  utility: UtilityHook | null,
  probed: ReadonlyArray<{ tag: number; node: Uint8Array }>,
): boolean {
  const candidate = (engine as unknown as { mod?: Partial<SettingsModule> }).mod;
  if (!candidate || !functionTable || !utility) return false;
  if (ENTRY_POINTS.some((name) => typeof candidate[name] !== 'function')) return false;
  const module = candidate as SettingsModule;
  const layout = settingLayout(probed);
  if (!layout || !findsPlaceholders(module)) return false;
  const custom = new CustomSettings(holder);
  const forClient = () => (holder.table ? callerPid() : 0);

  /** A custom setting `pid` never set, which exists here only because another client set it. */
  const othersOnly = (pid: number, name: string) =>
    name.includes('.') && !custom.has(pid, name) && isPlaceholder(module, name);
  const unrecognized = (name: string) =>
    report(module, ERROR, '42704', `unrecognized configuration parameter "${name}"`);
  const noRoom = (name: string) =>
    report(
      module,
      ERROR,
      '54000',
      `too many custom settings: "${name}" cannot be kept apart from other clients'`,
    );

  utility.on(layout.setTag, (node, run) => {
    const pid = forClient();
    if (pid === 0) return run();
    const name = utility.stringAt(node, SET_NAME);
    const kind = module.HEAPU32[(node + SET_KIND) >> 2];
    if (name !== null && !custom.set(pid, name)) noRoom(name);
    run();
    const local = module.HEAPU8[node + layout.isLocal] !== 0;
    if (!local && !(kind === VAR_SET_MULTI && name === 'TRANSACTION')) holder.table!.settingsChanged(pid);
  });
  utility.on(layout.showTag, (node, run) => {
    const pid = forClient();
    const name = pid === 0 ? null : utility.stringAt(node, SHOW_NAME);
    if (name !== null && othersOnly(pid, name)) unrecognized(name);
    run();
  });

  const setConfig = wrapBuiltin(module, SET_CONFIG, (original) => {
    const postgres = functionTable.get(original) as (fcinfo: number) => number;
    return (fcinfo) => {
      const pid = forClient();
      const name = pid === 0 ? null : textArgument(module, fcinfo, 0);
      if (name === null) return postgres(fcinfo);
      if (!custom.set(pid, name)) noRoom(name);
      const value = postgres(fcinfo);
      const local = !argumentIsNull(module, fcinfo, 2) && argument(module, fcinfo, 2) !== 0;
      if (!local) holder.table!.settingsChanged(pid);
      return value;
    };
  });
  const currentSetting = (missingOk: boolean) => (original: number) => {
    const postgres = functionTable.get(original) as (fcinfo: number) => number;
    return (fcinfo: number) => {
      const pid = forClient();
      const name = pid === 0 ? null : textArgument(module, fcinfo, 0);
      if (name === null || !othersOnly(pid, name)) return postgres(fcinfo);
      if (!missingOk || argument(module, fcinfo, 1) === 0) unrecognized(name);
      module.HEAPU8[fcinfo + FCINFO_ISNULL] = 1;
      return 0;
    };
  };
  const reads =
    wrapBuiltin(module, CURRENT_SETTING, currentSetting(false)) &&
    wrapBuiltin(module, CURRENT_SETTING_MISSING_OK, currentSetting(true));
  if (!setConfig || !reads) return false;
  installed.add(engine);
  return true;
}

/** What the probes showed of SET and SHOW nodes; null when it is not as this module expects. */
function settingLayout(
  probed: ReadonlyArray<{ tag: number; node: Uint8Array }>,
): { setTag: number; showTag: number; isLocal: number } | null {
  const [set, setLocal, reset, show] = probed;
  if (!set || !setLocal || !reset || !show) return null;
  const nodes = [set, setLocal, reset].map((probe) => Buffer.from(probe.node));
  if (set.tag !== setLocal.tag || set.tag !== reset.tag || set.tag === show.tag) return null;
  if (nodes[0]!.readUInt32LE(SET_KIND) !== 0 || nodes[2]!.readUInt32LE(SET_KIND) !== VAR_RESET) return null;
  // is_local: the first byte after the name and args that SET LOCAL has and SET does not.
  for (let at = SET_NAME + 8; at < nodes[0]!.length; at++) {
    if (nodes[0]![at] === 0 && nodes[1]![at] === 1)
      return { setTag: set.tag, showTag: show.tag, isLocal: at };
  }
  return null;
}

/** Whether `name` is a placeholder: a custom setting no loaded module defines. */
function isPlaceholder(module: SettingsModule, name: string): boolean {
  const config = withCString(module, name, (pointer) => module._find_option(pointer, 0, 1, ERROR));
  return config !== 0 && (module.HEAPU32[(config + CONFIG_FLAGS) >> 2]! & CUSTOM_PLACEHOLDER) !== 0;
}

/** Checks that settings are where isPlaceholder looks: the probe's is one, work_mem is not. */
function findsPlaceholders(module: SettingsModule): boolean {
  const named = (name: string) => {
    const config = withCString(module, name, (pointer) => module._find_option(pointer, 0, 1, ERROR));
    return config !== 0 && module.UTF8ToString(module.HEAPU32[(config + CONFIG_NAME) >> 2]!) === name;
  };
  return (
    named(PROBE_SETTING) &&
    named('work_mem') &&
    isPlaceholder(module, PROBE_SETTING) &&
    !isPlaceholder(module, 'work_mem') &&
    !isPlaceholder(module, 'search_path')
  );
}
