import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempRoot } from './helpers/temp-root.js';

const dist = path.resolve('dist');

function runNode(args: string[]): string {
  return execFileSync(process.execPath, args, { encoding: 'utf8', cwd: path.resolve('.'), env: process.env });
}

// The built package, loaded the way users load it: `require` from CommonJS and `import` from ESM.
describe('the built package (npm test builds it first)', () => {
  it('runs a query through require() of the CJS build', async () => {
    const root = await tempRoot();
    const script = `
      const ox = require(${JSON.stringify(path.join(dist, 'index.cjs'))});
      (async () => {
        const paths = await ox.installAndInitIn(${JSON.stringify(root)});
        const runtime = await ox.InteractiveRuntime.start(paths);
        const out = await runtime.execInteractive('SELECT 6 * 7');
        await runtime.close();
        console.log(ox.hexc(out, '<-').includes('42') ? 'ok' : 'wrong');
      })();`;
    expect(runNode(['-e', script]).trim()).toBe('ok');
  });

  it('exports the same names from the ESM and CJS builds', () => {
    const script = `
      const cjs = Object.keys(require(${JSON.stringify(path.join(dist, 'index.cjs'))})).sort();
      import(${JSON.stringify(path.join(dist, 'index.js'))}).then((esm) => {
        console.log(JSON.stringify(cjs) === JSON.stringify(Object.keys(esm).sort()) ? 'same' : 'different');
      });`;
    expect(runNode(['-e', script]).trim()).toBe('same');
  });

  it('behaves as one package when a process loads it by both require() and import', async () => {
    const root = await tempRoot();
    const script = `
      const cjs = require(${JSON.stringify(path.join(dist, 'index.cjs'))});
      import(${JSON.stringify(path.join(dist, 'index.js'))}).then(async (esm) => {
        const facts = {
          twoCopies: cjs.InteractiveRuntime !== esm.InteractiveRuntime,
          cjsErrorIsEsmClass: new cjs.LockTimeoutError('x') instanceof esm.LockTimeoutError,
          cjsErrorIsEsmBase: new cjs.InvalidInputError('x') instanceof esm.PgliteOxideError,
          esmErrorIsCjsBase: new esm.InvalidInputError('x') instanceof cjs.PgliteOxideError,
          otherClassIsNot: new cjs.LockTimeoutError('x') instanceof esm.InstallError,
          plainErrorIsNot: new Error('x') instanceof esm.PgliteOxideError,
        };
        const [a, b] = await Promise.all([esm.defaultRuntime(), cjs.defaultRuntime()]);
        facts.oneDefaultRuntime = a === b;
        await cjs.closeDefaultRuntime();
        facts.closedForBoth = a.isClosed;
        console.log(JSON.stringify(facts));
      });`;
    const facts = JSON.parse(
      execFileSync(process.execPath, ['-e', script], {
        encoding: 'utf8',
        env: { ...process.env, PGLITE_OXIDE_ROOT: root },
      }).trim(),
    );
    expect(facts).toEqual({
      twoCopies: true,
      cjsErrorIsEsmClass: true,
      cjsErrorIsEsmBase: true,
      esmErrorIsCjsBase: true,
      otherClassIsNot: false,
      plainErrorIsNot: false,
      oneDefaultRuntime: true,
      closedForBoth: true,
    });
  });

  it('carries the shipped cluster, which the CJS and ESM builds both find and unpack', async () => {
    const packed = JSON.parse(
      execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { encoding: 'utf8' }),
    ) as Array<{
      files: Array<{ path: string }>;
    }>;
    const files = packed[0]!.files.map((file) => file.path);
    expect(files).toEqual(expect.arrayContaining(['assets/cluster.tar.xz', 'assets/cluster.json']));
    for (const entry of ['index.cjs', 'index.js']) {
      const cacheDir = await tempRoot('pglite-oxide-empty-cache-');
      const load = entry.endsWith('.cjs')
        ? `Promise.resolve(require(${JSON.stringify(path.join(dist, entry))}))`
        : `import(${JSON.stringify(path.join(dist, entry))})`;
      const script = `
        ${load}.then(async (ox) => {
          const tasks = [];
          await ox.cachedCluster({ cacheDir: ${JSON.stringify(cacheDir)}, onProgress: (e) => e.phase === 'start' && tasks.push(e.task) });
          console.log(JSON.stringify(tasks));
        });`;
      expect(JSON.parse(runNode(['-e', script]).trim())).toEqual([
        expect.stringContaining('unpacking the PostgreSQL 17.5 cluster'),
      ]);
    }
  });
});
