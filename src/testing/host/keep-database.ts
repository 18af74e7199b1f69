import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import { installAndInitIn } from '../../install/install.js';
import { PglitePaths } from '../../install/paths.js';
import type { SuiteDatabase } from '../suite-database.js';

/**
 * Writes a hosted database, as it is now, to `dir` as a pglite-oxide root that
 * `pglite-oxide serve --data <dir>` opens: the failing test's state, for a look with psql.
 * Returns the root.
 */
export async function keepDatabase(suite: SuiteDatabase, dir: string): Promise<string> {
  const root = path.resolve(dir);
  const pgdata = PglitePaths.withRoot(root).pgdata;
  await fs.mkdir(pgdata, { recursive: true, mode: 0o700 });
  const archive = await suite.runtime.withEngine(async (engine) => {
    // Everything in shared buffers onto the engine's files, so the copy needs no recovery.
    await engine.exec('CHECKPOINT');
    return engine.dumpDataDir('none');
  });
  await pipeline(
    Readable.fromWeb(archive.stream() as import('node:stream/web').ReadableStream),
    tar.x({ cwd: pgdata, strip: 1 }),
  );
  // The engine files next to the data, as any root has them; the cluster found there is kept.
  await installAndInitIn(root);
  return root;
}
