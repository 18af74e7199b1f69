export type { AuthMethod } from './auth.js';
export type { ProxyOptions } from './options.js';
export { type ProxyHandle, startProxy } from './server.js';
