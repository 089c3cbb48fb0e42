// Module resolution for the Chromium-backed Electron (register() it first): 'electron' is
// ../chromium.mjs's main-process API (electron-module.mjs); everything else as ../loader.mjs
// resolves it ('@bridge-rpc/client[/...]' through the package's "exports" map).

import { resolve as resolveLikeTheStandin } from '../loader.mjs';

export async function resolve(specifier, context, nextResolve) {
  if (specifier === 'electron') return { url: new URL('./electron-module.mjs', import.meta.url).href, shortCircuit: true };
  return resolveLikeTheStandin(specifier, context, nextResolve);
}
