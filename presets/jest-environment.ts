// Jest testEnvironment of pglite-oxide: Jest's node environment, plus this test file's database.
// It runs outside the test sandbox: it leases the database, points DATABASE_URL/PG* at it, and
// isolates each test around Jest's own test events. Test files see only a URL and usePglite().
import path from 'node:path';
import type { EnvironmentContext, JestEnvironmentConfig } from '@jest/environment';
import type { Circus } from '@jest/types';
import { TestEnvironment as NodeEnvironment } from 'jest-environment-node';
import { type FileOptions, TestFileDatabase } from '../src/testing/test-file-database.js';
import { fixtureOf, SANDBOX_GLOBAL } from './fixture.js';
import { fileOptionsFromDocblock, publishedRun } from './jest-run.js';

export default class PgliteEnvironment extends NodeEnvironment {
  private database: TestFileDatabase | undefined;
  private readonly testFile: string;
  private readonly projectId: string;
  private readonly fileOptions: FileOptions;

  constructor(config: JestEnvironmentConfig, context: EnvironmentContext) {
    super(config, context);
    this.testFile = path.relative(config.projectConfig.rootDir, context.testPath);
    this.projectId = config.projectConfig.id;
    this.fileOptions = fileOptionsFromDocblock(context.docblockPragmas);
  }

  override async setup(): Promise<void> {
    await super.setup();
    const database = await TestFileDatabase.open(publishedRun(this.projectId), this.fileOptions);
    this.database = database;
    const sandboxEnv = (this.global.process as NodeJS.Process).env;
    Object.assign(sandboxEnv, database.env);
    (this.global as Record<string, unknown>)[SANDBOX_GLOBAL] = fixtureOf(database);
  }

  override async teardown(): Promise<void> {
    await this.database?.close(this.testFile);
    this.database = undefined;
    await super.teardown();
  }

  async handleTestEvent(event: Circus.Event): Promise<void> {
    const database = this.database;
    if (!database) return;
    if (event.name === 'test_start') {
      await database.beforeTest();
    } else if (event.name === 'test_done') {
      const message = await database.afterTest({
        failed: event.test.errors.length > 0,
        label: `${this.testFile} ${fullName(event.test)}`,
      });
      if (message) console.warn(message);
    }
  }
}

function fullName(test: Circus.TestEntry): string {
  const names = [test.name];
  for (
    let block: Circus.DescribeBlock | undefined = test.parent;
    block && block.name !== 'ROOT_DESCRIBE_BLOCK';
    block = block.parent
  ) {
    names.unshift(block.name);
  }
  return names.join(' ');
}
