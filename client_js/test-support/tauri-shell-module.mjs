// What `import '@tauri-apps/plugin-shell'` resolves to under loader.mjs.

import { SHELL } from './tauri-shell.mjs';

const shell = globalThis[SHELL];
if (!shell) throw new Error("the plugin-shell stand-in is not installed: call installTauriShell() before importing '@tauri-apps/plugin-shell'");

export const { Command, Child, EventEmitter, open } = shell.module;
