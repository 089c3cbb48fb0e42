// What `import 'electron'` resolves to under loader.mjs: the main process's exports, or, for a
// module imported by a page's preload (its URL carries ?renderer=<page id>), that page's.

import { REGISTRY } from './electron.mjs';

const electron = globalThis[REGISTRY];
if (!electron) throw new Error("the Electron stand-in is not installed: call installElectron() before importing 'electron'");
const page = new URL(import.meta.url).searchParams.get('renderer');
const api = page ? electron.rendererModule(Number(page)) : electron.mainModule();

export const { app, BrowserWindow, ipcMain, ipcRenderer, contextBridge } = api;
export default api;
