import fs from 'node:fs/promises';
import path from 'node:path';
import { leaseDatabase, startEngineHost } from 'pglite-oxide';
import { describe, expect, it } from 'vitest';
import { pgtapFiles, runTapFiles, tapChecks } from '../src/testing/pgtap-files.js';
import { parseTap } from '../src/testing/tap.js';
import { itemsTemplate } from './helpers/items-template.js';
import { tempRoot } from './helpers/temp-root.js';

describe('parseTap', () => {
  it('reads a plan, passing and failing assertions with their diagnostics, TODO and SKIP', () => {
    const tap = parseTap([
      '1..4',
      'ok 1 - has table items',
      'not ok 2 - names are unique\n# Failed test 2: "names are unique"\n#         have: 2\n#         want: 1',
      'not ok 3 - later # TODO not built yet',
      'ok 4 # SKIP no network',
    ]);
    expect(tap).toEqual({
      planned: 4,
      comments: [],
      assertions: [
        { number: 1, description: 'has table items', ok: true, directive: null, diagnostics: [] },
        {
          number: 2,
          description: 'names are unique',
          ok: false,
          directive: null,
          diagnostics: ['Failed test 2: "names are unique"', '        have: 2', '        want: 1'],
        },
        { number: 3, description: 'later', ok: false, directive: 'todo', diagnostics: [] },
        { number: 4, description: '', ok: true, directive: 'skip', diagnostics: [] },
      ],
    });
  });
});

describe('pgTAP files', () => {
  it('finds files by name, directory or a * in the file name, sorted', async () => {
    const dir = await tempRoot('pglite-oxide-tap-');
    await fs.mkdir(path.join(dir, 'db'));
    for (const name of ['b_test.sql', 'a_test.sql', 'notes.txt'])
      await fs.writeFile(path.join(dir, 'db', name), '');
    expect(pgtapFiles(['db/*_test.sql'], dir)).toEqual([
      path.join(dir, 'db', 'a_test.sql'),
      path.join(dir, 'db', 'b_test.sql'),
    ]);
    expect(pgtapFiles(['db'], dir)).toHaveLength(2);
    expect(() => pgtapFiles(['db/*.tap'], dir)).toThrow('no SQL file matches db/*.tap');
    expect(() => pgtapFiles(['*/x.sql'], dir)).toThrow('a * may stand only in the file name');
  });

  it('runs each file from the template state and turns its TAP into checks', async () => {
    const dir = await tempRoot('pglite-oxide-tap-run-');
    const write = (name: string, sql: string) => fs.writeFile(path.join(dir, name), sql);
    await write(
      'a.sql',
      "\\set ON_ERROR_STOP 1\nSELECT plan(2);\nSELECT has_table('items');\nINSERT INTO items (name) VALUES ('from a');\nSELECT is((SELECT count(*)::int FROM items), 1, 'one item');\nSELECT * FROM finish();",
    );
    await write(
      'b.sql',
      "SELECT plan(2);\nSELECT is((SELECT count(*)::int FROM items), 1, 'a left nothing behind');\nSELECT * FROM finish();",
    );
    await write('c.sql', 'SELECT plan(1);\nSELECT no_such_function();');
    const host = await startEngineHost({ template: await itemsTemplate(), maxDatabases: 1, spare: 0 });
    const lease = await leaseDatabase(host.address);
    try {
      const results = await runTapFiles(lease, pgtapFiles(['*.sql'], dir), dir);
      expect(results.map((result) => [result.file, tapChecks(result)])).toEqual([
        [
          'a.sql',
          [
            { name: '1 - Table items should exist', failure: null, todo: false, skip: false },
            {
              name: '2 - one item',
              failure: expect.stringMatching(
                /^not ok 2 - one item\nFailed test 2: "one item"\n\s+have: 2\n\s+want: 1/,
              ),
              todo: false,
              skip: false,
            },
          ],
        ],
        [
          'b.sql',
          [
            { name: '1 - a left nothing behind', failure: null, todo: false, skip: false },
            { name: 'meets its plan', failure: 'planned 2 tests but ran 1', todo: false, skip: false },
          ],
        ],
        [
          'c.sql',
          [
            {
              name: 'runs to the end',
              failure:
                'the file stopped: function no_such_function() does not exist\nHINT: No function matches the given name and argument types. You might need to add explicit type casts.',
              todo: false,
              skip: false,
            },
            { name: 'meets its plan', failure: 'planned 1 tests but ran 0', todo: false, skip: false },
          ],
        ],
      ]);
    } finally {
      await lease.release();
      await host.close();
    }
  });
});
