import { describe, expect, it } from 'vitest';
import { startupSettings } from '../src/proxy/login/startup-settings.js';

describe('startupSettings', () => {
  it('reads settings from startup parameters and from options, as PostgreSQL does', () => {
    const params = new Map([
      ['user', 'postgres'],
      ['database', 'app'],
      ['application_name', 'svc'],
      ['client_encoding', 'UTF8'],
      ['DateStyle', 'ISO'],
      ['_pq_.option', 'x'],
      ['options', '-c statement_timeout=5s -csearch_path=a,b --lock-timeout=1s -c x.y=with\\ space'],
    ]);
    expect([...startupSettings(params)]).toEqual([
      ['datestyle', 'ISO'],
      ['statement_timeout', '5s'],
      ['search_path', 'a,b'],
      ['lock_timeout', '1s'],
      ['x.y', 'with space'],
    ]);
  });
});
