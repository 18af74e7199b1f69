// TAP, as pgTAP writes it: `1..N`, then `ok N - description` or `not ok N - description`, each
// failure followed by `# ` diagnostics; `# TODO` and `# SKIP` directives after a description.

/** One assertion of a TAP stream. */
export interface TapAssertion {
  number: number;
  description: string;
  ok: boolean;
  /** `# TODO ...`: a failure that is expected; `# SKIP ...`: not run. */
  directive: 'todo' | 'skip' | null;
  /** The `# ` lines that followed it, without the `# `. */
  diagnostics: string[];
}

export interface TapResult {
  /** The number of assertions the plan announced, or null when there was no plan. */
  planned: number | null;
  assertions: TapAssertion[];
  /** `# ` lines before the first assertion (pgTAP's diag() output, for instance). */
  comments: string[];
}

const ASSERTION = /^(not )?ok\b\s*(\d+)?\s*(?:-\s*)?(.*)$/;
const DIRECTIVE = /\s*#\s*(TODO|SKIP)\b\s*(.*)$/i;

/** Reads TAP lines (several may come in one text, separated by newlines). */
export function parseTap(texts: Iterable<string>): TapResult {
  const result: TapResult = { planned: null, assertions: [], comments: [] };
  for (const text of texts) {
    for (const line of text.split('\n')) {
      const plan = /^1\.\.(\d+)/.exec(line);
      if (plan) {
        result.planned = Number(plan[1]);
        continue;
      }
      const assertion = ASSERTION.exec(line);
      if (assertion) {
        let description = assertion[3] ?? '';
        const directive = DIRECTIVE.exec(description);
        if (directive) description = description.slice(0, directive.index);
        result.assertions.push({
          number: assertion[2] ? Number(assertion[2]) : result.assertions.length + 1,
          description: description.trim(),
          ok: !assertion[1],
          directive: directive ? (directive[1]!.toLowerCase() as 'todo' | 'skip') : null,
          diagnostics: [],
        });
        continue;
      }
      if (line.startsWith('#')) {
        const comment = line.replace(/^#\s?/, '');
        const last = result.assertions.at(-1);
        if (last) last.diagnostics.push(comment);
        else result.comments.push(comment);
      }
    }
  }
  return result;
}
