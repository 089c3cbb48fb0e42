// Module resolution for tests that load the examples unchanged (register() it first):
// - 'electron' is the stand-in (electron-module.mjs); a preload imported with
//   ?bridge-renderer=<id> gets that page's own copy, as each real renderer has its own.
// - '@tauri-apps/plugin-shell' is the stand-in (tauri-shell-module.mjs).
// - '@bridge-rpc/client[/...]' resolves through this package's "exports" map, so a broken map
//   fails the examples' tests.

import { readFileSync } from 'node:fs';

const packageRoot = new URL('../', import.meta.url);
const { exports: exportsMap } = JSON.parse(readFileSync(new URL('package.json', packageRoot), 'utf8'));
const PACKAGE = '@bridge-rpc/client';

export async function resolve(specifier, context, nextResolve) {
  if (specifier === 'electron') {
    const url = new URL('./electron-module.mjs', import.meta.url);
    const page = context.parentURL ? new URL(context.parentURL).searchParams.get('bridge-renderer') : null;
    if (page) url.searchParams.set('renderer', page);
    return { url: url.href, shortCircuit: true };
  }
  if (specifier === '@tauri-apps/plugin-shell') {
    return { url: new URL('./tauri-shell-module.mjs', import.meta.url).href, shortCircuit: true };
  }
  if (specifier === PACKAGE || specifier.startsWith(`${PACKAGE}/`)) {
    const subpath = `.${specifier.slice(PACKAGE.length)}`;
    const target = exportsMap[subpath];
    const file = typeof target === 'string' ? target : target?.default;
    if (!file) throw new Error(`${specifier} is not exported by ${PACKAGE} (package.json "exports" has no "${subpath}")`);
    return { url: new URL(file, packageRoot).href, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}
