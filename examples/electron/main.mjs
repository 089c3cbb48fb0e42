// The main process: start the bridge host as a sidecar, let the window call it through
// window.bridge (only the methods and events allowed below), and close the host on quit.
//
//     npm install && npm start        (from this folder; runs the repository's built-in handlers)

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { app, BrowserWindow, ipcMain } from 'electron';
import { spawnSidecar } from '@bridge-rpc/client/node';
import { exposeToRenderers } from '@bridge-rpc/client/electron/main';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '..', '..');

/** Rust's target triple for this machine, which `bridge bundle` puts in the sidecar's name. */
const TRIPLE = {
  'linux-x64': 'x86_64-unknown-linux-gnu',
  'linux-arm64': 'aarch64-unknown-linux-gnu',
  'darwin-x64': 'x86_64-apple-darwin',
  'darwin-arm64': 'aarch64-apple-darwin',
  'win32-x64': 'x86_64-pc-windows-msvc',
  'win32-arm64': 'aarch64-pc-windows-msvc',
}[`${process.platform}-${process.arch}`];

/**
 * How to start the host. Packaged, the app ships the folder `bridge bundle bridge.builtins.demo:app
 * --name bridge-host --out sidecar` built (package.json > build > extraResources) and runs the
 * executable in it; in development, the repository's Python runs `-m bridge serve` of the same app.
 */
function hostCommand() {
  if (app.isPackaged) {
    const stem = `bridge-host-${TRIPLE}`;
    const exe = join(process.resourcesPath, stem, stem + (process.platform === 'win32' ? '.exe' : ''));
    return { command: exe, args: [...PLUGINS, '--config', join(process.resourcesPath, 'bridge.toml')], cwd: process.resourcesPath };
  }
  const venv = process.platform === 'win32' ? join(repoRoot, '.venv', 'Scripts', 'python.exe') : join(repoRoot, '.venv', 'bin', 'python');
  const python = process.env.BRIDGE_PYTHON || (existsSync(venv) ? venv : 'python3');
  return { command: python, args: ['-m', 'bridge', 'serve', 'bridge.builtins.demo:app', ...PLUGINS, '--config', join(here, 'bridge.toml')], cwd: repoRoot };
}

/** The terminal pane's plugin; bridge.toml says which programs it may start. */
const PLUGINS = ['--plugin', 'terminal'];

/** What the window may call and hear: the demo's methods and the terminal's. */
export const ALLOW = { allow: ['system.ping', 'demo.*', 'terminal.*'], events: ['demo.tick', 'terminal.exited'] };

/** The host starts while Electron does. Exported for other main-process modules. */
export const sidecar = spawnSidecar(hostCommand());
sidecar.catch(() => {}); // reported below, once the app is ready

let unexpose = () => {};
let hostClosed = false;

function createWindow() {
  const window = new BrowserWindow({
    width: 760,
    height: 560,
    webPreferences: {
      preload: join(here, 'preload.mjs'),
      sandbox: false, // an ESM preload needs it; see preload.mjs for keeping the sandbox
      contextIsolation: true,
      nodeIntegration: false,
    },
  });
  window.loadFile(join(here, 'index.html'));
  return window;
}

app
  .whenReady()
  .then(async () => {
    const client = await sidecar;
    unexpose = exposeToRenderers(client, { ipcMain, ...ALLOW });
    createWindow();
    app.on('activate', () => {
      if (BrowserWindow.getAllWindows().length === 0) createWindow();
    });
  })
  .catch((error) => {
    console.error('could not start the bridge host:', error);
    app.exit(1);
  });

app.on('window-all-closed', () => {
  if (process.platform !== 'darwin') app.quit();
});

// Hold the quit until the host has finished its calls and exited, then quit for real.
app.on('will-quit', (event) => {
  if (hostClosed) return;
  event.preventDefault();
  unexpose();
  sidecar
    .then((client) => client.close())
    .catch((error) => console.error('closing the bridge host:', error))
    .finally(() => {
      hostClosed = true;
      app.quit();
    });
});
