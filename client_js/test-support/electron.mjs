// A stand-in for the parts of Electron the bridge helpers touch. examples/electron's page runs in
// real Chromium in test/electron-chromium.test.mjs (test-support/chromium.mjs: a real DOM and
// CSP, the module script and xterm.js terminal pane, the preload bundled with esbuild, IPC
// through Playwright bindings), so this one is kept only for what a single Chromium page cannot
// show, and to run where Chromium is not installed:
// - contextBridge copying between the preload's isolated world and the page's own realm
//   (Chromium's page has one world there): what electron-preload.js is built around;
// - process isolation: each renderer with its own `electron` module and preload run, several
//   windows side by side (events only to the windows that subscribed or that `$meta.to` names,
//   a closed window cancelling only its own calls);
// - the sender frame: senderFrame null once the page is gone, each window's $caller from its
//   own webContents id and frame URL;
// - Electron's own texts and rules: "An object could not be cloned." (Chromium's
//   structuredClone says "Failed to execute 'structuredClone' on 'Window': ..."), "Error invoking
//   remote method '<channel>': ...", ESM preloads refused in a sandboxed renderer.
//
// Faithful where it matters:
//
// - IPC (ipcRenderer.invoke/send, webContents.send) is asynchronous, keeps order, and
//   structured-clones every message with the real structuredClone. Like Chromium it also
//   refuses platform objects (an AbortSignal, any EventTarget) and promises, which Node's
//   structuredClone would copy as `{}`. A class instance is copied without its prototype, as
//   V8's serializer does in Electron. An error thrown by an ipcMain.handle handler reaches
//   the renderer as `Error invoking remote method '<channel>': <error.toString()>`.
// - contextBridge copies values between the page's world and the preload's the way
//   electron/shell/renderer/api/electron_api_context_bridge.cc does: functions are proxied
//   (errors they throw arrive as a new Error with only the message), promises are proxied,
//   an Error becomes `new Error(message)`, arrays and objects are copied key by key keeping
//   only own enumerable properties (so an AbortSignal arrives as `{}` and a class instance
//   loses its prototype), everything else goes through the structured clone. The page's world
//   is a separate node:vm context, so it has its own Object, Error and Promise.
//   executeInMainWorld re-evaluates the function from its source text in that context.
// - A page loads its preload (ESM only; refused in a sandboxed renderer, as Electron does)
//   with an `electron` module of its own, then runs the page's classic <script>s in the page's
//   world against a FakeDocument. `import 'electron'` is routed here by loader.mjs.
//
// Install with installElectron() before importing anything that imports 'electron'.

import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { types } from 'node:util';
import vm from 'node:vm';
import { FakeDocument } from './fake-dom.mjs';

export const REGISTRY = Symbol.for('bridge.electron-standin');

/** Electron's IPC delivers on a later turn of the event loop, in order. */
const hop = (fn) => setImmediate(fn);

/** Clone `value` as Electron's IPC would: throws where Chromium's serializer throws. */
export function ipcClone(value) {
  rejectUncloneable(value, new Set());
  return structuredClone(value);
}

function rejectUncloneable(value, seen) {
  if (typeof value === 'function' || typeof value === 'symbol') throw new Error('An object could not be cloned.');
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (value instanceof EventTarget || types.isPromise(value) || types.isWeakMap(value) || types.isWeakSet(value)) {
    throw new Error('An object could not be cloned.');
  }
  if (types.isMap(value)) {
    for (const [key, item] of value) {
      rejectUncloneable(key, seen);
      rejectUncloneable(item, seen);
    }
  } else if (types.isSet(value)) {
    for (const item of value) rejectUncloneable(item, seen);
  } else {
    for (const key of Object.keys(value)) rejectUncloneable(value[key], seen);
  }
}

// ---- contextBridge ---------------------------------------------------------------------

/** One JavaScript world: the preload's (this realm) or the page's (a vm context). */
class World {
  constructor(name, context = null) {
    this.name = name;
    this.context = context;
    const intrinsics = context ? vm.runInContext('({ Object, Array, Error, TypeError, Promise })', context) : { Object, Array, Error, TypeError, Promise };
    Object.assign(this, intrinsics);
    this.makeFunction = context ? vm.runInContext('(impl) => function () { return impl(arguments); }', context) : (impl) => function () { return impl(arguments); };
  }
}

/** proxy function -> { fn, world }: a function sent back over the bridge is unwrapped. */
const proxiedFunctions = new WeakMap();

const MAX_DEPTH = 1000;

export function passValue(value, from, to, cache = new Map(), depth = 0) {
  if (depth >= MAX_DEPTH) {
    throw new to.TypeError('Electron contextBridge recursion depth exceeded.  Nested objects deeper than 1000 are not supported.');
  }
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return value;
  if (cache.has(value)) return cache.get(value);

  if (typeof value === 'function') {
    const original = proxiedFunctions.get(value);
    if (original && original.world === to) return original.fn;
    const proxy = to.makeFunction((args) => callAcross(value, args, to, from));
    proxiedFunctions.set(proxy, { fn: value, world: from });
    cache.set(value, proxy);
    return proxy;
  }
  if (types.isPromise(value)) {
    const proxied = new to.Promise((resolve, reject) => {
      value.then(
        (result) => resolve(passValue(result, from, to)),
        (error) => reject(passValue(error, from, to)),
      );
    });
    cache.set(value, proxied);
    return proxied;
  }
  if (types.isNativeError(value)) {
    // Only the message survives; name, code, data, cause and the class are gone.
    return new to.Error(typeof value.message === 'string' ? value.message : String(value));
  }
  if (Array.isArray(value)) {
    const copy = new to.Array();
    cache.set(value, copy);
    for (let i = 0; i < value.length; i++) copy[i] = passValue(value[i], from, to, cache, depth + 1);
    return copy;
  }
  if (isPlainObject(value)) {
    const copy = new to.Object();
    cache.set(value, copy);
    for (const key of Object.keys(value)) copy[key] = passValue(value[key], from, to, cache, depth + 1);
    return copy;
  }
  // Dates, Maps, Sets, RegExps, typed arrays: V8's serializer, which throws for the rest.
  const cloned = structuredClone(value);
  cache.set(value, cloned);
  return cloned;
}

/** IsPlainObject in electron_api_context_bridge.cc: any object not of a kind listed there. */
function isPlainObject(value) {
  return !(
    types.isDate(value) ||
    types.isArgumentsObject(value) ||
    types.isBoxedPrimitive(value) ||
    types.isNativeError(value) ||
    types.isRegExp(value) ||
    types.isPromise(value) ||
    types.isMap(value) ||
    types.isSet(value) ||
    types.isMapIterator(value) ||
    types.isSetIterator(value) ||
    types.isWeakMap(value) ||
    types.isWeakSet(value) ||
    types.isAnyArrayBuffer(value) ||
    ArrayBuffer.isView(value) ||
    Array.isArray(value) ||
    types.isProxy(value) ||
    types.isModuleNamespaceObject(value)
  );
}

function callAcross(fn, args, callingWorld, owningWorld) {
  const cache = new Map();
  const passed = Array.from(args, (arg) => passValue(arg, callingWorld, owningWorld, cache));
  let result;
  try {
    result = fn(...passed);
  } catch (error) {
    const message =
      error !== null && typeof error === 'object' && typeof error.message === 'string'
        ? error.message
        : 'An unknown exception occurred in the isolated context, an error occurred but a valid exception was not thrown.';
    throw new callingWorld.Error(message);
  }
  return passValue(result, owningWorld, callingWorld);
}

function deepFreeze(value, seen = new Set()) {
  if (value === null || typeof value !== 'object' || seen.has(value) || ArrayBuffer.isView(value)) return;
  seen.add(value);
  for (const key of Object.getOwnPropertyNames(value)) deepFreeze(value[key], seen);
  Object.freeze(value);
}

class ContextBridgeStandin {
  #page;

  constructor(page) {
    this.#page = page;
  }

  #check() {
    if (this.#page.webPreferences.contextIsolation === false) {
      throw new Error('contextBridge API can only be used when contextIsolation is enabled');
    }
  }

  exposeInMainWorld(apiKey, api) {
    this.#check();
    const global = this.#page.window;
    if (Object.prototype.hasOwnProperty.call(global, apiKey)) {
      throw new Error('Cannot bind an API on top of an existing property on the window object');
    }
    const proxy = passValue(api, this.#page.isolatedWorld, this.#page.mainWorld);
    deepFreeze(proxy);
    Object.defineProperty(global, apiKey, { value: proxy, enumerable: true, writable: false, configurable: false });
  }

  executeInMainWorld({ func, args = [] } = {}) {
    this.#check();
    if (typeof func !== 'function') throw new TypeError('Expected "func" to be a function');
    const page = this.#page;
    // Serialised with the built-in toString, so bound values and closures are lost.
    const source = Function.prototype.toString.call(func);
    const inMainWorld = vm.runInContext(`(${source})`, page.mainWorld.context);
    const cache = new Map();
    const passed = args.map((arg) => passValue(arg, page.isolatedWorld, page.mainWorld, cache));
    let result;
    try {
      result = inMainWorld(...passed);
    } catch (error) {
      throw new Error(typeof error?.message === 'string' ? error.message : String(error));
    }
    return passValue(result, page.mainWorld, page.isolatedWorld);
  }
}

// ---- Electron --------------------------------------------------------------------------

/**
 * Install a fresh stand-in as what `import 'electron'` gives (through loader.mjs) and return
 * it: `{ app, BrowserWindow, ipcMain, pages, nextPage(), uninstall() }`.
 */
export function installElectron() {
  let nextWebContentsId = 1;
  let nextWindowId = 1;
  let nextPageId = 1;
  const pages = new Map(); // page id -> Page
  const windows = new Set();
  const pageWaiters = [];

  function preventable() {
    return {
      defaultPrevented: false,
      preventDefault() {
        this.defaultPrevented = true;
      },
    };
  }

  class IpcMainStandin extends EventEmitter {
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

    hasHandler(channel) {
      return this.#handlers.has(channel);
    }

    async _invoke(page, channel, args) {
      const handler = this.#handlers.get(channel);
      if (!handler) return { error: `Error: No handler registered for '${channel}'` };
      try {
        const result = await handler(page.event(), ...args);
        return { result: ipcClone(result) };
      } catch (error) {
        return { error: String(error) };
      }
    }

    _receive(page, channel, args) {
      this.emit(channel, page.event(), ...args);
    }
  }
  const ipcMain = new IpcMainStandin();

  class IpcRendererStandin extends EventEmitter {
    #page;

    constructor(page) {
      super();
      this.#page = page;
    }

    send(channel, ...args) {
      const page = this.#page;
      if (!page.alive) return;
      const cloned = ipcClone(args);
      hop(() => ipcMain._receive(page, channel, cloned));
    }

    invoke(channel, ...args) {
      const page = this.#page;
      let cloned;
      try {
        cloned = ipcClone(args);
      } catch (error) {
        return Promise.reject(error);
      }
      return new Promise((resolve, reject) => {
        hop(async () => {
          const reply = await ipcMain._invoke(page, channel, cloned);
          hop(() => {
            if (!page.alive) return; // the page is gone: nothing is left to settle
            if ('error' in reply) reject(new Error(`Error invoking remote method '${channel}': ${reply.error}`));
            else resolve(reply.result);
          });
        });
      });
    }

    _deliver(channel, args) {
      if (!this.#page.alive) return;
      const event = { sender: this, senderId: 0, ports: [] };
      for (const listener of this.listeners(channel)) {
        try {
          listener(event, ...args);
        } catch (error) {
          this.#page.console.error(error);
        }
      }
    }
  }

  /** One loaded document: its renderer-side electron module, worlds and DOM. */
  class Page {
    alive = true;

    constructor(contents, url) {
      this.id = nextPageId++;
      this.contents = contents;
      this.url = url;
      this.webPreferences = contents.webPreferences;
      this.html = url.startsWith('file:') ? readFileSync(fileURLToPath(url), 'utf8') : '';
      this.document = new FakeDocument(this.html);
      this.console = makeConsole();
      const context = vm.createContext({
        document: this.document,
        console: this.console,
        location: { href: url },
        AbortController,
        AbortSignal,
        EventTarget,
        Event,
        DOMException,
        setTimeout,
        clearTimeout,
        queueMicrotask,
        structuredClone,
      });
      this.window = vm.runInContext('globalThis.window = globalThis', context);
      this.mainWorld = new World('main', context);
      this.isolatedWorld = new World('isolated');
      this.frame = {
        url,
        processId: this.id,
        routingId: 1,
        frameTreeNodeId: contents.id,
        send: (channel, ...args) => contents.send(channel, ...args),
      };
      this.ipcRenderer = new IpcRendererStandin(this);
      this.contextBridge = new ContextBridgeStandin(this);
      pages.set(this.id, this);
    }

    /** What `require('electron')` gives this page's preload. */
    get electron() {
      return { ipcRenderer: this.ipcRenderer, contextBridge: this.contextBridge };
    }

    /** The event object ipcMain handlers and listeners get for this page's messages. */
    event() {
      return {
        type: 'frame',
        sender: this.contents,
        senderFrame: this.alive ? this.frame : null,
        frameId: this.frame.routingId,
        processId: this.frame.processId,
        reply: (channel, ...args) => this.contents.send(channel, ...args),
      };
    }

    /** Run source text in the page's world, as a page script. */
    run(source, filename = 'inline.js') {
      return vm.runInContext(source, this.mainWorld.context, { filename });
    }

    async start() {
      const { preload, sandbox } = this.webPreferences;
      if (preload) {
        if (!isAbsolute(preload)) throw new Error(`preload must be an absolute path: ${preload}`);
        if (!preload.endsWith('.mjs')) throw new Error(`the stand-in loads ESM (.mjs) preloads only: ${preload}`);
        if (sandbox !== false) {
          throw new Error(`Unable to load preload script: ${preload}\nESM preload scripts need sandbox: false; sandboxed renderers cannot import modules`);
        }
        const url = pathToFileURL(preload);
        url.searchParams.set('bridge-renderer', String(this.id));
        await import(url.href);
      }
      const base = this.url.startsWith('file:') ? dirname(fileURLToPath(this.url)) : null;
      for (const { src, type } of FakeDocument.scripts(this.html)) {
        if (!src || !base) continue;
        // Module scripts (the example's xterm pane) run in real Chromium: test/electron-chromium.test.mjs.
        if (type === 'module') continue;
        if (type !== 'classic' && type !== 'text/javascript') throw new Error(`the stand-in runs classic scripts only, not type="${type}"`);
        const file = resolvePath(base, src);
        this.run(readFileSync(file, 'utf8'), file);
      }
    }

    kill() {
      this.alive = false;
      pages.delete(this.id);
    }
  }

  class WebContentsStandin extends EventEmitter {
    #destroyed = false;
    page = null;
    /** Every webContents.send: { channel, args }, for tests to inspect. */
    sent = [];

    constructor(webPreferences) {
      super();
      this.id = nextWebContentsId++;
      this.webPreferences = { contextIsolation: true, ...webPreferences };
    }

    send(channel, ...args) {
      if (this.#destroyed) throw new Error('Object has been destroyed');
      const cloned = ipcClone(args);
      this.sent.push({ channel, args: cloned });
      const page = this.page;
      hop(() => page?.ipcRenderer._deliver(channel, cloned));
    }

    get mainFrame() {
      return this.page?.frame ?? null;
    }

    getURL() {
      return this.page?.url ?? '';
    }

    isDestroyed() {
      return this.#destroyed;
    }

    loadFile(file) {
      return this.loadURL(pathToFileURL(resolvePath(file)).href);
    }

    async loadURL(url) {
      if (this.#destroyed) throw new Error('Object has been destroyed');
      this.page?.kill();
      const page = new Page(this, url);
      this.page = page;
      await page.start();
      this.emit('did-finish-load');
      for (const waiter of pageWaiters.splice(0)) waiter(page);
      return page;
    }

    destroy() {
      if (this.#destroyed) return;
      this.page?.kill();
      this.#destroyed = true;
      this.emit('destroyed');
    }
  }

  class BrowserWindowStandin extends EventEmitter {
    #destroyed = false;

    static getAllWindows() {
      return [...windows];
    }

    constructor(options = {}) {
      super();
      this.id = nextWindowId++;
      this.options = options;
      this.webContents = new WebContentsStandin(options.webPreferences);
      windows.add(this);
    }

    loadFile(file) {
      return this.webContents.loadFile(file);
    }

    loadURL(url) {
      return this.webContents.loadURL(url);
    }

    close() {
      if (this.#destroyed) return;
      const event = preventable();
      this.emit('close', event);
      if (!event.defaultPrevented) this.destroy();
    }

    destroy() {
      if (this.#destroyed) return;
      this.#destroyed = true;
      windows.delete(this);
      this.webContents.destroy();
      this.emit('closed');
      if (windows.size === 0 && !app.quitting) app.emit('window-all-closed');
    }

    isDestroyed() {
      return this.#destroyed;
    }
  }

  class AppStandin extends EventEmitter {
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
      return Promise.resolve();
    }

    isReady() {
      return true;
    }

    /** Electron's order: before-quit, close every window, will-quit, quit. Each can be prevented. */
    quit() {
      if (this.exitCode !== undefined) return;
      const beforeQuit = preventable();
      this.emit('before-quit', beforeQuit);
      if (beforeQuit.defaultPrevented) return;
      this.quitting = true;
      for (const window of [...windows]) window.close();
      if (windows.size > 0) {
        this.quitting = false;
        return;
      }
      const willQuit = preventable();
      this.emit('will-quit', willQuit);
      if (willQuit.defaultPrevented) {
        this.quitting = false;
        return;
      }
      this.#finish(0);
    }

    exit(code = 0) {
      if (this.exitCode !== undefined) return;
      this.quitting = true;
      for (const window of [...windows]) window.destroy();
      this.#finish(code);
    }

    #finish(code) {
      this.exitCode = code;
      this.emit('quit', preventable(), code);
      this.#exited(code);
    }
  }
  const app = new AppStandin();

  const electron = {
    app,
    ipcMain,
    BrowserWindow: BrowserWindowStandin,
    pages,
    /** Resolves with the next page that finishes loading. */
    nextPage() {
      return new Promise((resolve) => pageWaiters.push(resolve));
    },
    /** What 'electron' exports in the main process. */
    mainModule() {
      return { app, ipcMain, BrowserWindow: BrowserWindowStandin };
    },
    /** What 'electron' exports in page `id`'s preload. */
    rendererModule(id) {
      const page = pages.get(id);
      if (!page) throw new Error(`no live page ${id}`);
      return page.electron;
    },
    uninstall() {
      if (globalThis[REGISTRY] === electron) delete globalThis[REGISTRY];
    },
  };
  globalThis[REGISTRY] = electron;
  return electron;
}

function makeConsole() {
  const messages = [];
  const record =
    (level) =>
    (...args) =>
      messages.push({ level, args });
  return { messages, log: record('log'), info: record('info'), warn: record('warn'), error: record('error'), debug: record('debug') };
}
