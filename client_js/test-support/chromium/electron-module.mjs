// What `import 'electron'` gives a main-process module under chromium/loader.mjs: the
// Chromium-backed app, BrowserWindow and ipcMain that ../chromium.mjs installed.

import { REGISTRY } from '../chromium.mjs';

const electron = globalThis[REGISTRY];
if (!electron) throw new Error("the Chromium-backed Electron is not installed: call installChromiumElectron() before importing 'electron'");

export const { app, BrowserWindow, ipcMain } = electron.mainModule();
export default electron.mainModule();
