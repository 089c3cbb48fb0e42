// What `import '@tauri-apps/plugin-shell'` resolves to under loader.mjs: the real plugin, the
// same module instance tauri-shell.mjs hands out. Its commands need installTauriShell() first.

export * from '../node_modules/@tauri-apps/plugin-shell/dist-js/index.js';
