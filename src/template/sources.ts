import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { InvalidInputError } from '../errors.js';

/** One SQL file of migrations or seed, with its content read once. */
export interface SqlFile {
  path: string;
  sql: string;
}

/**
 * The SQL files named by a list of files and directories, in order: a directory contributes its
 * `.sql` files sorted by name with numbers compared as numbers (so 2_x.sql runs before 10_y.sql),
 * but not the `*.down.sql` of an up/down layout, which undo migrations. A directory with none is
 * told to `warn`: a wrong path would otherwise give an empty database without a word.
 */
export function readSqlFiles(
  sources: string | readonly string[] | undefined,
  warn: (message: string) => void = () => {},
): SqlFile[] {
  const list = sources === undefined ? [] : typeof sources === 'string' ? [sources] : sources;
  return list.flatMap((source) => {
    const resolved = path.resolve(source);
    if (!existsSync(resolved)) throw new InvalidInputError(`No such migration or seed path: ${resolved}`);
    if (!statSync(resolved).isDirectory()) return [readSqlFile(resolved)];
    const files = readdirSync(resolved)
      .filter((name) => name.endsWith('.sql') && !name.endsWith('.down.sql'))
      .sort(new Intl.Collator('en', { numeric: true }).compare);
    if (files.length === 0) warn(`pglite-oxide: ${resolved} has no .sql files to apply.`);
    return files.map((name) => readSqlFile(path.join(resolved, name)));
  });
}

function readSqlFile(file: string): SqlFile {
  return { path: file, sql: readFileSync(file, 'utf8') };
}
