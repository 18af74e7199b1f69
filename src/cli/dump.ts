import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { InvalidInputError, PgDumpError } from '../errors.js';
import { installAndInitIn } from '../install/install.js';
import { PglitePaths } from '../install/paths.js';
import { InteractiveRuntime } from '../runtime/interactive-runtime.js';

/** pg_dump of a pglite-oxide root, with the pg_dump built for this engine (PostgreSQL 17). */
export async function dumpCommand(args: string[], flags: { data: string; file?: string }): Promise<void> {
  const paths = PglitePaths.withRoot(flags.data);
  if (!existsSync(path.join(paths.pgdata, 'PG_VERSION'))) {
    throw new InvalidInputError(
      `${path.resolve(flags.data)} holds no database (no ${paths.pgdata}/PG_VERSION).`,
    );
  }
  const runtime = await InteractiveRuntime.start(await installAndInitIn(flags.data));
  try {
    const output = await runtime.runPgDump(['pg_dump', ...args]);
    if (output === null) throw new PgDumpError('this install has no pg_dump module', 1, '');
    if (flags.file) await fs.writeFile(flags.file, output);
    else process.stdout.write(output);
  } finally {
    await runtime.close();
  }
}
