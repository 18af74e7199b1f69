import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { listTemplates, pruneTemplates } from '../src/template/template-cache.js';
import { tempRoot } from './helpers/temp-root.js';

/** A directory that looks like a cached template, last used `minutesAgo`. */
async function fakeTemplate(cacheDir: string, key: string, minutesAgo: number): Promise<void> {
  const dir = path.join(cacheDir, 'templates', key);
  await fs.mkdir(path.join(dir, 'global'), { recursive: true });
  await fs.writeFile(path.join(dir, 'PG_VERSION'), '17\n');
  await fs.writeFile(path.join(dir, 'global', 'pg_control'), 'x');
  const when = new Date(Date.now() - minutesAgo * 60_000);
  await fs.utimes(dir, when, when);
}

describe('the template cache', () => {
  it('keeps the most recently used templates, and any used in the last minutes', async () => {
    const cacheDir = await tempRoot('pglite-oxide-cache-');
    await fakeTemplate(cacheDir, 'a', 60 * 24);
    await fakeTemplate(cacheDir, 'b', 60);
    await fakeTemplate(cacheDir, 'c', 30);
    await fakeTemplate(cacheDir, 'd', 2);
    await fakeTemplate(cacheDir, 'e', 1);
    // Not templates: a lock file, a build that never finished.
    await fs.writeFile(path.join(cacheDir, 'templates', 'f.lock'), '');
    await fs.mkdir(path.join(cacheDir, 'templates', 'g.123-ab.partial'));
    expect((await listTemplates(cacheDir)).map((t) => t.key)).toEqual(['e', 'd', 'c', 'b', 'a']);

    const removed = await pruneTemplates(cacheDir, { keep: 1 });
    // d is beyond the one kept, but was used two minutes ago: a run may be starting from it.
    expect(removed.map((t) => t.key)).toEqual(['c', 'b', 'a']);
    expect((await listTemplates(cacheDir)).map((t) => t.key)).toEqual(['e', 'd']);

    expect((await pruneTemplates(cacheDir, { keep: 0, all: true })).map((t) => t.key)).toEqual(['e', 'd']);
    expect(await listTemplates(cacheDir)).toEqual([]);
  });
});
