// PostgreSQL's ereport() from JavaScript running inside an engine call (a replaced built-in, a
// hook): the error unwinds to PostgreSQL's own error recovery, as one raised in C would.

export interface ReportingModule {
  HEAPU8: Uint8Array;
  _malloc(size: number): number;
  _free(pointer: number): void;
  _errstart(level: number, domain: number): number;
  _errcode(sqlstate: number): number;
  _errmsg(format: number, args: number): number;
  _errdetail(format: number, args: number): number;
  _errfinish(filename: number, line: number, func: number): void;
}

export const REPORTING_ENTRY_POINTS = [
  '_malloc',
  '_free',
  '_errstart',
  '_errcode',
  '_errmsg',
  '_errdetail',
  '_errfinish',
] as const;

/** elog levels. */
export const WARNING = 19;
export const ERROR = 21;

/** ereport() at `level`: an ERROR does not return (it unwinds to PostgreSQL's error recovery). */
export function report(
  engine: ReportingModule,
  level: number,
  sqlstate: string,
  message: string,
  detail?: string,
): void {
  if (!engine._errstart(level, 0)) return;
  engine._errcode(sqlstateCode(sqlstate));
  // errmsg and errdetail copy the text: it is freed before errfinish, which may not return.
  const texts = [message, detail].map((text) =>
    text === undefined ? 0 : cString(engine, text.replaceAll('%', '%%')),
  );
  engine._errmsg(texts[0]!, 0);
  if (texts[1]) engine._errdetail(texts[1], 0);
  for (const text of texts) if (text) engine._free(text);
  engine._errfinish(0, 0, 0);
}

function cString(engine: ReportingModule, text: string): number {
  const bytes = Buffer.from(`${text}\0`, 'utf8');
  const pointer = engine._malloc(bytes.length);
  engine.HEAPU8.set(bytes, pointer);
  return pointer;
}

/** MAKE_SQLSTATE: six bits a character. */
function sqlstateCode(sqlstate: string): number {
  let code = 0;
  for (let i = 0; i < 5; i++) code |= ((sqlstate.charCodeAt(i) - 48) & 0x3f) << (6 * i);
  return code;
}
