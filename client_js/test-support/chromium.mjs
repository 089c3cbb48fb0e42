// Electron's main-process API backed by real headless Chromium (Debian's /usr/bin/chromium through
// playwright-core), so examples/electron's main.mjs, preload and page run unchanged with their
// renderer in a real browser:
//
// - BrowserWindow is a Playwright page. Its webPreferences.preload is bundled with esbuild as
//   examples/electron/README.md says for a sandboxed renderer (`--bundle --platform=node
//   --format=cjs --external:electron`, the package resolved from node_modules through its
//   "exports" map) and run at document start, before the page's scripts, wrapped as Electron
//   wraps a sandboxed preload, with `require('electron')` from chromium/renderer-electron.mjs.
// - ipcMain is a small EventEmitter with handle()/removeHandler(); the page's invoke and send
//   arrive through Playwright's exposeBinding, with an event whose sender is the window's
//   webContents and whose senderFrame.url is the URL Chromium reports for the calling frame.
//   webContents.send and invoke replies go back in order through one queue of page.evaluate.
// - app: whenReady(), quit() (closes the windows, then 'will-quit', which may be prevented), exit().
//
// Not shown here (test-support/electron.mjs is kept for them): contextBridge's copying between an
// isolated world and the page's, and separate renderer processes.
//
// installChromiumElectron(browser) makes it what `import 'electron'` gives under chromium/loader.mjs.

import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join, relative, resolve as resolvePath, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';
import { chromium } from 'playwright-core';
import { rendererElectron } from './chromium/renderer-electron.mjs';
import { which } from './parts.mjs';

export const REGISTRY = Symbol.for('bridge.electron-chromium');

/** The chromium partMissing('chromium') found on PATH (Debian's /usr/bin/chromium). */
export const CHROMIUM = which('chromium') ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // Electron's default for file:// pages (webPreferences allow_file_access_from_file_urls and
  // allow_universal_access_from_file_urls, under its GrantFileProtocolExtraPrivileges fuse):
  // without it Chromium refuses module scripts from file:// as cross-origin.
  '--allow-file-access-from-files',
];

/** Launch headless Chromium; Playwright gives it a fresh temporary --user-data-dir. */
export function launchChromium() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

const packageRoot = fileURLToPath(new URL('../', import.meta.url));

/**
 * The packages `npm install` would put in `appDir`'s node_modules, as name -> folder: a `file:`
 * dependency is that folder (npm links it), any other is this package's copy in its own
 * node_modules (a devDependency here). Throws for a dependency this package does not have.
 */
export function installedPackages(appDir) {
  const { dependencies = {} } = JSON.parse(readFileSync(join(appDir, 'package.json'), 'utf8'));
  const packages = {};
  for (const [name, spec] of Object.entries(dependencies)) {
    const folder = spec.startsWith('file:') ? resolvePath(appDir, spec.slice(5)) : join(packageRoot, 'node_modules', name);
    if (!existsSync(join(folder, 'package.json'))) {
      throw new Error(`${appDir} depends on ${name}, which client_js does not have (add it to its devDependencies)`);
    }
    packages[name] = folder;
  }
  return packages;
}

/**
 * Bundle a preload the way examples/electron/README.md says, its imports resolved from a
 * node_modules laid out like `npm install`'s (`packages`: name -> folder, linked).
 * Returns the CommonJS text.
 */
export async function bundlePreload(file, packages) {
  const modules = mkdtempSync(join(tmpdir(), 'bridge-preload-'));
  try {
    for (const [name, folder] of Object.entries(packages)) {
      mkdirSync(dirname(join(modules, 'node_modules', name)), { recursive: true });
      symlinkSync(folder, join(modules, 'node_modules', name), 'dir');
    }
    const { outputFiles } = await esbuild.build({
      entryPoints: [file],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      external: ['electron'],
      nodePaths: [join(modules, 'node_modules')],
      write: false,
      logLevel: 'silent',
    });
    return outputFiles[0].text;
  } finally {
    rmSync(modules, { recursive: true, force: true });
  }
}

/** The init script that runs `bundle` in the page, as Electron runs a sandboxed preload. */
function preloadScript(bundle, file, bindings) {
  return `(() => {
  const electron = (${rendererElectron.toString()})(${JSON.stringify(bindings)});
  const require = (name) => {
    if (name === 'electron') return electron;
    throw new Error('module not found: ' + name);
  };
  const module = { exports: {} };
  (function (exports, require, module, __filename, __dirname) {
${bundle}
  })(module.exports, require, module, ${JSON.stringify(file)}, ${JSON.stringify(dirname(file))});
})();`;
}

const BINDINGS = { invoke: '__electronIpcInvoke', send: '__electronIpcSend', deliver: '__electronIpcDeliver' };

const CONTENT_TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.map': 'application/json' };

/**
 * Serve a page's `file://…/node_modules/<name>/…` requests from `packages`, as if npm had
 * installed them beside the page; other names fall through to the file system (and fail there
 * as they would without `npm install`).
 */
async function serveNodeModules(context, packages) {
  await context.route(/^file:\/\/.*\/node_modules\//, (route) => {
    const path = decodeURIComponent(new URL(route.request().url()).pathname);
    const rest = path.slice(path.lastIndexOf('/node_modules/') + '/node_modules/'.length);
    const parts = rest.split('/');
    const name = parts[0].startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
    const folder = packages[name];
    if (!folder) return route.continue();
    const file = resolvePath(folder, rest.slice(name.length + 1));
    if (relative(folder, file).startsWith(`..${sep}`) || !existsSync(file)) return route.fulfill({ status: 404 });
    return route.fulfill({ path: file, contentType: CONTENT_TYPES[extname(file)] ?? 'application/octet-stream' });
  });
}

/**
 * Install Electron's main-process API on `browser` as what `import 'electron'` resolves to
 * (through chromium/loader.mjs) and return it: `{ app, BrowserWindow, ipcMain, nextWindow(),
 * uninstall() }`. `nextWindow()` resolves with `{ window, page }` once a window's page loaded.
 * `packages` (name -> folder, see installedPackages) is the app's node_modules, for its
 * preloads and its pages.
 */
export function installChromiumElectron(browser, { packages = {} } = {}) {
  let nextId = 1;
  const windows = new Set();
  const windowWaiters = [];
  const preloads = new Map(); // path -> Promise<bundle text>
  const contextPromise = browser.newContext().then(async (context) => {
    await serveNodeModules(context, packages);
    return context;
  });

  const preventable = () => ({
    defaultPrevented: false,
    preventDefault() {
      this.defaultPrevented = true;
    },
  });

  class IpcMain extends EventEmitter {
    #handlers = new Map();

    handle(channel, listener) {
      if (this.#handlers.has(channel)) throw new Error(`Attempted to register a second handler for '${channel}'`);
      if (typeof listener !== 'function') throw new TypeError(`Expected handler to be a function, but found type '${typeof listener}'`);
      this.#handlers.set(channel, listener);
    }

    handleOnce(channel, listener) {
      this.handle(channel, (...args) => {
        this.removeHandler(channel);
        return listener(...args);
      });
    }

    removeHandler(channel) {
      this.#handlers.delete(channel);
    }

    /** An invoke from a page: the handler's value, cloned, or Electron's error text. */
    async _invoke(event, channel, args) {
      const handler = this.#handlers.get(channel);
      try {
        if (!handler) throw new Error(`No handler registered for '${channel}'`);
        return { ok: true, value: structuredClone(await handler(event, ...args)) };
      } catch (error) {
        return { ok: false, value: `Error invoking remote method '${channel}': ${error}` };
      }
    }
  }
  const ipcMain = new IpcMain();

  class WebContents extends EventEmitter {
    #destroyed = false;
    /** Messages for the page, delivered in order by one page.evaluate at a time. */
    #outbox = [];
    #flushing = false;
    page = null;
    /** The page's console errors and uncaught errors, as text. */
    problems = [];

    constructor(webPreferences) {
      super();
      this.id = nextId++;
      this.webPreferences = { contextIsolation: true, ...webPreferences };
    }

    send(channel, ...args) {
      if (this.#destroyed) throw new Error('Object has been destroyed');
      this._post({ kind: 'message', channel, args: structuredClone(args) });
    }

    _post(message) {
      this.#outbox.push(message);
      if (!this.#flushing) this.#flush();
    }

    async #flush() {
      this.#flushing = true;
      while (this.#outbox.length > 0 && !this.#destroyed) {
        const batch = this.#outbox.splice(0);
        // A page that is gone drops what was on its way, as a renderer that exited does.
        await this.page
          .evaluate(([name, messages]) => globalThis[name](messages), [BINDINGS.deliver, batch])
          .catch((error) => this.#destroyed || this.problems.push(`delivery: ${error.message}`));
      }
      this.#flushing = false;
    }

    getURL() {
      return this.page?.url() ?? '';
    }

    isDestroyed() {
      return this.#destroyed;
    }

    /** The event ipcMain handlers and listeners get for a message from `frame`. */
    _event(frame) {
      const url = frame.url();
      return {
        type: 'frame',
        sender: this,
        senderFrame: { url, top: null, send: (channel, ...args) => this.send(channel, ...args) },
        frameId: 1,
        processId: this.id,
        reply: (channel, ...args) => this.send(channel, ...args),
      };
    }

    async _open(context) {
      const page = await context.newPage();
      this.page = page;
      page.on('console', (message) => message.type() === 'error' && this.problems.push(`console.error: ${message.text()}`));
      page.on('pageerror', (error) => this.problems.push(`uncaught: ${error.message}`));
      await page.exposeBinding(BINDINGS.invoke, async ({ frame }, run, seq, channel, args) => {
        const reply = await ipcMain._invoke(this._event(frame), channel, args);
        if (!this.#destroyed) this._post({ kind: 'reply', run, seq, ...reply });
      });
      await page.exposeBinding(BINDINGS.send, ({ frame }, channel, args) => {
        ipcMain.emit(channel, this._event(frame), ...args);
      });
      const { preload } = this.webPreferences;
      if (preload) {
        if (!preloads.has(preload)) preloads.set(preload, bundlePreload(preload, packages));
        await page.addInitScript({ content: preloadScript(await preloads.get(preload), preload, BINDINGS) });
      }
      return page;
    }

    async loadURL(url) {
      await this.page.goto(url);
      this.emit('did-finish-load');
    }

    loadFile(file) {
      return this.loadURL(pathToFileURL(resolvePath(file)).href);
    }

    async _destroy() {
      if (this.#destroyed) return;
      this.#destroyed = true;
      await this.page?.close();
      this.emit('destroyed');
    }
  }

  class BrowserWindow extends EventEmitter {
    #destroyed = false;
    #opened;

    static getAllWindows() {
      return [...windows];
    }

    constructor(options = {}) {
      super();
      this.options = options;
      this.webContents = new WebContents(options.webPreferences);
      this.#opened = contextPromise.then((context) => this.webContents._open(context));
      windows.add(this);
    }

    async loadURL(url) {
      const page = await this.#opened;
      await this.webContents.loadURL(url);
      for (const waiter of windowWaiters.splice(0)) waiter({ window: this, page });
    }

    loadFile(file) {
      return this.loadURL(pathToFileURL(resolvePath(file)).href);
    }

    /** Close the window unless a 'close' listener prevents it; resolves once it is gone. */
    async close() {
      if (this.#destroyed) return;
      const event = preventable();
      this.emit('close', event);
      if (!event.defaultPrevented) await this.destroy();
    }

    async destroy() {
      if (this.#destroyed) return;
      this.#destroyed = true;
      windows.delete(this);
      await this.#opened.catch(() => {});
      await this.webContents._destroy();
      this.emit('closed');
      if (windows.size === 0 && !app.quitting) app.emit('window-all-closed');
    }

    isDestroyed() {
      return this.#destroyed;
    }
  }

  class App extends EventEmitter {
    isPackaged = false;
    quitting = false;
    exitCode = undefined;
    #exited;

    constructor() {
      super();
      /** Resolves with the exit code once the app quit (or exit() was called). */
      this.exited = new Promise((resolve) => {
        this.#exited = resolve;
      });
    }

    whenReady() {
      return contextPromise.then(() => {});
    }

    isReady() {
      return true;
    }

    /** Electron's order: before-quit, close every window, will-quit, quit; each can be prevented. */
    quit() {
      if (this.exitCode !== undefined || this.quitting) return;
      const beforeQuit = preventable();
      this.emit('before-quit', beforeQuit);
      if (beforeQuit.defaultPrevented) return;
      this.quitting = true;
      Promise.all([...windows].map((window) => window.close())).then(() => {
        this.quitting = false;
        if (windows.size > 0) return;
        const willQuit = preventable();
        this.emit('will-quit', willQuit);
        if (!willQuit.defaultPrevented) this.#finish(0);
      });
    }

    exit(code = 0) {
      if (this.exitCode !== undefined) return;
      this.quitting = true;
      Promise.all([...windows].map((window) => window.destroy())).then(() => this.#finish(code));
    }

    #finish(code) {
      this.exitCode = code;
      this.emit('quit', preventable(), code);
      this.#exited(code);
    }
  }
  const app = new App();

  const electron = {
    app,
    ipcMain,
    BrowserWindow,
    /** Resolves with the next window whose page finished loading: `{ window, page }`. */
    nextWindow() {
      return new Promise((resolve) => windowWaiters.push(resolve));
    },
    mainModule() {
      return { app, ipcMain, BrowserWindow };
    },
    uninstall() {
      if (globalThis[REGISTRY] === electron) delete globalThis[REGISTRY];
    },
  };
  globalThis[REGISTRY] = electron;
  return electron;
}
