// The page half of the Chromium-backed Electron (../chromium.mjs): what `require('electron')`
// gives a bundled preload running in a real Chromium page. `rendererElectron` is serialised
// into the page with its source text, so it may use nothing from this module.
//
// - ipcRenderer: invoke/send clone their arguments with the page's own structuredClone (the
//   V8 serializer Electron's IPC uses, so what it cannot clone throws here too) and cross to
//   Node through two Playwright bindings. Node answers through one ordered channel, `deliver`,
//   carrying both invoke replies and webContents.send messages, so a call's progress arrives
//   before its reply as over Electron's single IPC pipe.
// - contextBridge: a page has no isolated world here, so the preload runs in the main world.
//   executeInMainWorld still re-evaluates `func` from its source text (closures are lost, as in
//   Electron); exposeInMainWorld defines a frozen, read-only property. Nothing is copied across
//   worlds: that is test-support/electron.mjs's to show.

/**
 * Build the renderer's `electron` module. `bindings` names the Playwright bindings
 * (`invoke(run, seq, channel, args)`, `send(channel, args)`) and the global `deliver` that
 * Node calls with a batch of `{ kind: 'reply', run, seq, ok, value } | { kind: 'message', channel, args }`.
 */
export function rendererElectron(bindings) {
  const invokeBinding = globalThis[bindings.invoke];
  const sendBinding = globalThis[bindings.send];
  /** channel -> listeners, in the order they were added */
  const listeners = new Map();
  /** invoke seq -> { resolve, reject } */
  const pending = new Map();
  let nextSeq = 1;
  /** This document's run of the preload: replies meant for a document since replaced are dropped. */
  const run = crypto.randomUUID();

  const event = () => ({ sender: ipcRenderer, senderId: 0, ports: [] });
  const removeListener = (channel, listener) => {
    const list = listeners.get(channel);
    const at = list ? list.indexOf(listener) : -1;
    if (at >= 0) list.splice(at, 1);
    return ipcRenderer;
  };

  const ipcRenderer = {
    invoke(channel, ...args) {
      let cloned;
      try {
        cloned = structuredClone(args);
      } catch (error) {
        return Promise.reject(error);
      }
      const seq = nextSeq++;
      return new Promise((resolve, reject) => {
        pending.set(seq, { resolve, reject });
        invokeBinding(run, seq, channel, cloned);
      });
    },
    send(channel, ...args) {
      sendBinding(channel, structuredClone(args));
    },
    on(channel, listener) {
      if (!listeners.has(channel)) listeners.set(channel, []);
      listeners.get(channel).push(listener);
      return ipcRenderer;
    },
    once(channel, listener) {
      const wrapper = (...args) => {
        removeListener(channel, wrapper);
        listener(...args);
      };
      return ipcRenderer.on(channel, wrapper);
    },
    removeListener,
    off: removeListener,
    removeAllListeners(channel) {
      if (channel === undefined) listeners.clear();
      else listeners.delete(channel);
      return ipcRenderer;
    },
  };

  function deliver(batch) {
    for (const message of batch) {
      if (message.kind === 'reply') {
        if (message.run !== run) continue;
        const waiter = pending.get(message.seq);
        pending.delete(message.seq);
        if (message.ok) waiter?.resolve(message.value);
        else waiter?.reject(new Error(message.value));
        continue;
      }
      for (const listener of [...(listeners.get(message.channel) ?? [])]) {
        try {
          listener(event(), ...message.args);
        } catch (error) {
          console.error(error);
        }
      }
    }
  }
  Object.defineProperty(globalThis, bindings.deliver, { value: deliver });

  function deepFreeze(value, seen = new Set()) {
    if (value === null || (typeof value !== 'object' && typeof value !== 'function') || seen.has(value)) return value;
    seen.add(value);
    for (const key of Object.getOwnPropertyNames(value)) {
      const descriptor = Object.getOwnPropertyDescriptor(value, key);
      if ('value' in descriptor) deepFreeze(descriptor.value, seen);
    }
    return Object.freeze(value);
  }

  const contextBridge = {
    exposeInMainWorld(apiKey, api) {
      if (Object.prototype.hasOwnProperty.call(globalThis, apiKey)) {
        throw new Error('Cannot bind an API on top of an existing property on the window object');
      }
      Object.defineProperty(globalThis, apiKey, { value: deepFreeze(api), enumerable: true });
    },
    executeInMainWorld({ func, args = [] } = {}) {
      if (typeof func !== 'function') throw new TypeError('Expected "func" to be a function');
      // From its source text, as Electron does: a function that needs its module's scope fails here.
      const fresh = (0, eval)(`(${Function.prototype.toString.call(func)})`);
      return fresh(...args);
    },
  };

  return { ipcRenderer, contextBridge };
}
