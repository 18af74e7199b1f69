import { hexc, InteractiveRuntime, installAndInitIn } from 'pglite-oxide';
import { describe, expect, it } from 'vitest';
import { tempRoot } from './helpers/temp-root.js';

describe('InteractiveRuntime', () => {
  it('answers SELECT 42 with a DataRow', async () => {
    const paths = await installAndInitIn(await tempRoot());
    const runtime = await InteractiveRuntime.start(paths);
    try {
      const bytes = await runtime.execInteractive('SELECT 42 AS answer');
      expect(hexc(bytes, '<-')).toContain('answer');
    } finally {
      await runtime.close();
    }
  });
});
