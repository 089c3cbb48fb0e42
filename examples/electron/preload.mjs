// Runs before the page, in its isolated world, and gives the page `window.bridge`.
//
// An ES module, so it can import the helper from node_modules: Electron runs ESM preloads
// (.mjs) in renderers created with `sandbox: false` (main.mjs does). A sandboxed renderer
// only runs a single CommonJS preload file; to keep the sandbox, bundle this file into one,
// e.g. `esbuild preload.mjs --bundle --platform=node --format=cjs --external:electron
// --outfile=preload.cjs`, and point webPreferences.preload at preload.cjs.

import { contextBridge, ipcRenderer } from 'electron';
import { exposeBridge } from '@bridge-rpc/client/electron/preload';

exposeBridge({ contextBridge, ipcRenderer }); // window.bridge; pass `name` for another key
