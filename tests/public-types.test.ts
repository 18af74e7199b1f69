import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempRoot } from './helpers/temp-root.js';

// A user's project that type-checks its libraries too (skipLibCheck: false, strict) compiles
// against every public entry point of the built package: the types it ships and those they name.
describe('the public types', () => {
  it('compile with skipLibCheck false under NodeNext, as ES module and CommonJS', async () => {
    const project = await tempRoot('pglite-oxide-types-');
    const modules = path.join(project, 'node_modules');
    await fs.mkdir(path.join(modules, '@types'), { recursive: true });
    // The package as its dependents see it, and what its types name (its dependencies, the peers).
    await fs.symlink(path.resolve('.'), path.join(modules, 'pglite-oxide'));
    for (const name of [
      '@electric-sql',
      'pg-protocol',
      'vitest',
      'vite',
      '@vitest',
      'jest-environment-node',
      '@jest',
    ]) {
      await fs.symlink(path.resolve('node_modules', name), path.join(modules, name));
    }
    for (const name of ['node', 'pg', 'emscripten']) {
      await fs.symlink(path.resolve('node_modules/@types', name), path.join(modules, '@types', name));
    }
    const imports = [
      "import * as oxide from 'pglite-oxide';",
      "import * as vitest from 'pglite-oxide/vitest';",
      "import * as config from 'pglite-oxide/vitest/config';",
      "import * as jest from 'pglite-oxide/jest';",
      "import environment from 'pglite-oxide/jest/environment';",
      'export const all = [oxide, vitest, config, jest, environment];',
    ].join('\n');
    await fs.writeFile(path.join(project, 'index.mts'), imports);
    await fs.writeFile(
      path.join(project, 'index.cts'),
      "import oxide = require('pglite-oxide');\nimport jest = require('pglite-oxide/jest');\nexport const all = [oxide, jest];\n",
    );
    await fs.writeFile(path.join(project, 'package.json'), '{ "name": "types-user", "private": true }');
    await fs.writeFile(
      path.join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          skipLibCheck: false,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          noEmit: true,
        },
        files: ['index.mts', 'index.cts'],
      }),
    );
    let output = '';
    try {
      execFileSync(path.resolve('node_modules/.bin/tsc'), ['-p', project], { encoding: 'utf8' });
    } catch (error) {
      output = (error as { stdout?: string }).stdout ?? String(error);
    }
    expect(output).toBe('');
  }, 120_000);
});
