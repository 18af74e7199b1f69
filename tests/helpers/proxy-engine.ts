import {
  InteractiveRuntime,
  installAndInitIn,
  type ProxyHandle,
  type ProxyOptions,
  startProxy,
} from 'pglite-oxide';
import { tempRoot } from './temp-root.js';

/** A fresh engine on its own root, and a proxy serving it; `close` stops both. */
export async function startServedEngine(options: Omit<ProxyOptions, 'runtime' | 'paths'> = {}): Promise<{
  proxy: ProxyHandle;
  runtime: InteractiveRuntime;
  root: string;
  warnings: string[];
  close(): Promise<void>;
}> {
  const root = await tempRoot('pglite-oxide-proxy-');
  const runtime = await InteractiveRuntime.start(await installAndInitIn(root));
  const warnings: string[] = [];
  const proxy = await startProxy({
    tcp: true,
    port: 0,
    onWarning: (message) => warnings.push(message),
    ...options,
    runtime,
  });
  return {
    proxy,
    runtime,
    root,
    warnings,
    close: async () => {
      await proxy.close();
      await runtime.close();
    },
  };
}
