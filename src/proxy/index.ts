export type { AuthMethod } from './login/auth.js';
export type { ProxyOptions } from './options.js';
export { type ProxyHandle, startProxy } from './server.js';
