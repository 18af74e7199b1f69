import { startTestRun } from 'pglite-oxide';
import { describe, expect, it } from 'vitest';
import { fileOptionsFromDocblock, optionsFromConfig } from '../presets/jest-run.js';
import { checkOptionNames, closestName } from '../src/option-names.js';

describe('options checked by name', () => {
  it('names the closest valid option of a slip, or lists them all', () => {
    const names = ['migrations', 'seed', 'isolation', 'keepDir'];
    expect(closestName('isolaton', names)).toBe('isolation');
    expect(closestName('migration', names)).toBe('migrations');
    expect(closestName('Seeds', names)).toBe('seed');
    expect(closestName('workers', names)).toBeNull();
    expect(() => checkOptionNames({ keepdir: '/x' }, names, 'the config')).toThrow(
      'pglite-oxide: unknown option "keepdir" in the config; did you mean "keepDir"?',
    );
    expect(() => checkOptionNames({ workers: 2 }, names, 'the config')).toThrow(
      'pglite-oxide: unknown option "workers" in the config. Known options: migrations, seed, isolation, keepDir.',
    );
  });

  it('refuses a misspelled option of a test run before building anything', async () => {
    await expect(startTestRun({ isolaton: 'reset' } as never, {}, 'pgliteOxide({ ... })')).rejects.toThrow(
      'pglite-oxide: unknown option "isolaton" in pgliteOxide({ ... }); did you mean "isolation"?',
    );
  });

  it("refuses Jest options under a key that is almost pgliteOxide, in jest.config and in a file's docblock", () => {
    expect(() => optionsFromConfig({ pgliteoxide: { isolation: 'reset' } }, '/project')).toThrow(
      'unknown key "pgliteoxide" in testEnvironmentOptions in jest.config; did you mean "pgliteOxide"?',
    );
    // Other keys are the environment's own (jest-environment-node's customExportConditions).
    expect(optionsFromConfig({ customExportConditions: ['node'] }, '/project')).toEqual({});
    expect(
      fileOptionsFromDocblock({ 'jest-environment-options': '{"pgliteOxide": {"isolation": "reset"}}' }),
    ).toEqual({ isolation: 'reset' });
    expect(fileOptionsFromDocblock({})).toEqual({});
    expect(() => fileOptionsFromDocblock({ 'jest-environment-options': '{"pgliteOxid": {}}' })).toThrow(
      /did you mean "pgliteOxide"/,
    );
  });
});
