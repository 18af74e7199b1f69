import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { tempRoot } from './temp-root.js';

/** The environment of a child process that must not think it runs inside this test run. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('VITEST') && name !== 'NODE_OPTIONS'),
  );
  return { ...env, CI: 'true', NO_COLOR: '1', FORCE_COLOR: '0', ...extra };
}

/** Packs this package as npm would publish it; returns the tarball path. */
export async function packPackage(): Promise<string> {
  const dir = await tempRoot('pglite-oxide-pack-');
  const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
    encoding: 'utf8',
    env: cleanEnv(),
  });
  const [packed] = JSON.parse(out) as Array<{ filename: string }>;
  if (!packed) throw new Error(`npm pack printed no tarball: ${out}`);
  return path.join(dir, packed.filename);
}

/**
 * A copy of fixtures/<name> with the packed package installed into it, as a user project.
 * `siblings` are other fixtures copied next to it, for a project that reads their files.
 */
export async function installFixture(
  name: string,
  tarball: string,
  siblings: string[] = [],
): Promise<string> {
  const parent = await tempRoot('pglite-oxide-fixture-');
  const dir = path.join(parent, name);
  for (const fixture of [name, ...siblings]) {
    await fs.cp(path.resolve('fixtures', fixture), path.join(parent, fixture), {
      recursive: true,
      filter: (source) => !source.includes(`${path.sep}node_modules`),
    });
  }
  execFileSync(
    'npm',
    ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', tarball],
    {
      cwd: dir,
      encoding: 'utf8',
      env: cleanEnv(),
      stdio: 'pipe',
    },
  );
  return dir;
}

/** The roots a run kept for its failing tests, as its output names them. */
export function keptRoots(output: string): string[] {
  return [...output.matchAll(/kept the database of the failing test .* at (\S+)/g)].map((match) => match[1]!);
}
