// Electron preload: give the page `window.bridge = { call, stream, on }`, backed by electron-main.js.
//
// Why two halves: with contextIsolation the page (main world) and the preload (isolated
// world) share only what contextBridge copies, and a copy keeps plain data and proxies
// functions but nothing else: an AbortSignal arrives as `{}`, an Error keeps only its message.
// So the preload hands the page a small port of functions and plain data, and `installBridge`
// (serialised by contextBridge.executeInMainWorld and run in the page's own world) builds the
// API on it: it listens to the page's AbortSignal itself and turns `{ name, code, message,
// data }` outcomes back into error classes.
//
// This module imports nothing, so a bundler can inline it into a sandboxed CommonJS preload.

/**
 * Expose the bridge to the page as `window[name]`. Call it once, at the top of the preload.
 * Needs contextIsolation (the default) and Electron >= 35 (contextBridge.executeInMainWorld).
 */
export function exposeBridge({ contextBridge, ipcRenderer, name = 'bridge', channel = 'bridge' } = {}) {
  if (typeof contextBridge?.executeInMainWorld !== 'function') {
    throw new Error(
      "exposeBridge: pass Electron's contextBridge; it needs Electron 35 or later (contextBridge.executeInMainWorld) and contextIsolation",
    );
  }
  if (!ipcRenderer || typeof ipcRenderer.invoke !== 'function') throw new TypeError("exposeBridge: pass Electron's ipcRenderer");
  if (typeof name !== 'string' || name === '') throw new TypeError('exposeBridge: name must be a non-empty string');
  if (typeof channel !== 'string' || channel === '') throw new TypeError('exposeBridge: channel must be a non-empty string');

  /** call id -> the page's progress callback (a contextBridge proxy) */
  const progress = new Map();
  /** event name -> the page's dispatcher for it (a contextBridge proxy) */
  const dispatchers = new Map();
  /** stream id -> { onChunk (a contextBridge proxy), received, outcome, finish } */
  const streams = new Map();

  ipcRenderer.on(`${channel}:progress`, (_event, message) => progress.get(message?.id)?.(message.value));
  ipcRenderer.on(`${channel}:event`, (_event, message) => dispatchers.get(message?.event)?.(message.params));
  ipcRenderer.on(`${channel}:chunk`, (_event, message) => {
    const entry = streams.get(message?.id);
    if (!entry) return;
    entry.received++;
    entry.onChunk(message);
    if (entry.outcome && entry.received >= entry.outcome.chunks) entry.finish();
  });
  // A reload runs the preload again: main drops whatever the previous page left running.
  ipcRenderer.send(`${channel}:reset`);

  const port = {
    async call(id, method, params, timeout, onProgress) {
      const wantsProgress = typeof onProgress === 'function';
      if (wantsProgress) progress.set(id, onProgress);
      try {
        return await ipcRenderer.invoke(`${channel}:call`, { id, method, params, timeout, progress: wantsProgress });
      } finally {
        progress.delete(id);
      }
    },
    /** Resolves with the outcome once every chunk main pushed before it was delivered. */
    stream(id, method, params, timeout, window, onChunk) {
      return new Promise((resolve, reject) => {
        const entry = { onChunk, received: 0, outcome: null };
        entry.finish = () => {
          streams.delete(id);
          resolve(entry.outcome);
        };
        streams.set(id, entry);
        ipcRenderer.invoke(`${channel}:stream`, { id, method, params, timeout, window }).then(
          (outcome) => {
            entry.outcome = { ...outcome, chunks: Number.isSafeInteger(outcome?.chunks) ? outcome.chunks : 0 };
            if (entry.received >= entry.outcome.chunks) entry.finish();
          },
          (error) => {
            streams.delete(id);
            reject(error);
          },
        );
      });
    },
    credit(id, credit) {
      ipcRenderer.send(`${channel}:credit`, { id, credit });
    },
    cancel(id) {
      ipcRenderer.send(`${channel}:cancel`, id);
    },
    async subscribe(event, dispatch) {
      dispatchers.set(event, dispatch);
      const outcome = await ipcRenderer.invoke(`${channel}:subscribe`, event);
      if (!outcome?.ok && dispatchers.get(event) === dispatch) dispatchers.delete(event);
      return outcome;
    },
    unsubscribe(event) {
      dispatchers.delete(event);
      ipcRenderer.send(`${channel}:unsubscribe`, event);
    },
  };
  contextBridge.executeInMainWorld({ func: installBridge, args: [name, port] });
}

/**
 * Runs in the page's world from its source text, so it may use nothing from this module.
 * Defines `globalThis[name]`, read-only: `{ call, stream, on }` and the error classes calls reject with.
 */
function installBridge(name, port) {
  class RpcError extends Error {
    constructor(code, message, data) {
      super(message);
      this.name = 'RpcError';
      this.code = code;
      if (data !== undefined) this.data = data;
    }
  }
  class CallCancelledError extends Error {
    constructor(method, reason) {
      super(`call to ${method} was cancelled`, reason === undefined ? undefined : { cause: reason });
      this.name = 'AbortError';
      this.method = method;
    }
  }
  class CallTimeoutError extends Error {
    constructor(method, timeout) {
      super(`call to ${method} timed out after ${timeout} ms`);
      this.name = 'TimeoutError';
      this.method = method;
      this.timeout = timeout;
    }
  }
  class ConnectionClosedError extends Error {
    constructor(message) {
      super(message);
      this.name = 'ConnectionClosedError';
    }
  }

  let nextId = 1;
  /** event name -> Set of listener entries */
  const listeners = new Map();

  function rebuild(method, error) {
    const message = typeof error?.message === 'string' ? error.message : 'unknown error';
    switch (error?.name) {
      case 'RpcError':
        return new RpcError(Number.isInteger(error.code) ? error.code : -32603, message, error.data);
      case 'AbortError':
        return new CallCancelledError(method);
      case 'TimeoutError':
        return new CallTimeoutError(method, error.timeout);
      case 'ConnectionClosedError':
        return new ConnectionClosedError(message);
      case 'TypeError':
        return new TypeError(message);
      default:
        return new Error(message);
    }
  }

  function report(error) {
    console.error(`[${name}]`, error);
  }

  function call(method, params, options) {
    const { signal, timeout, onProgress } = options ?? {};
    if (typeof method !== 'string' || method === '') return Promise.reject(new TypeError('method must be a non-empty string'));
    if (params !== undefined && (params === null || typeof params !== 'object')) {
      return Promise.reject(new TypeError('params must be an object, an array, or undefined'));
    }
    if (onProgress !== undefined && typeof onProgress !== 'function') return Promise.reject(new TypeError('onProgress must be a function'));
    if (signal?.aborted) return Promise.reject(new CallCancelledError(method, signal.reason));
    const id = nextId++;
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (fn, value) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        fn(value);
      };
      // Rejects at once; the preload tells main, which aborts its call: the host gets $/cancelRequest.
      const onAbort = () => {
        port.cancel(id);
        settle(reject, new CallCancelledError(method, signal.reason));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const progress = onProgress
        ? (value) => {
            if (settled) return;
            try {
              onProgress(value);
            } catch (error) {
              report(error);
            }
          }
        : undefined;
      port.call(id, method, params, timeout ?? undefined, progress).then(
        (outcome) => (outcome?.ok ? settle(resolve, outcome.result) : settle(reject, rebuild(method, outcome?.error))),
        // The preload could not send it: params that cannot be cloned, or no handler in main.
        (error) => settle(reject, new Error(`${name}: could not call ${method}: ${error?.message ?? error}`)),
      );
    });
  }

  /** The page's own stream iterator: chunks from main, one credit back per chunk taken. */
  function stream(method, params, options) {
    const { signal, timeout, window = 16, onProgress } = options ?? {};
    if (typeof method !== 'string' || method === '') throw new TypeError('method must be a non-empty string');
    if (params !== undefined && (params === null || typeof params !== 'object')) {
      throw new TypeError('params must be an object, an array, or undefined');
    }
    if (!(Number.isSafeInteger(window) && window >= 1)) throw new TypeError('window must be a positive integer');
    if (onProgress !== undefined && typeof onProgress !== 'function') throw new TypeError('onProgress must be a function');
    const id = nextId++;
    const buffer = [];
    const waiters = [];
    let outcome = null;
    let finished = false;
    let progress;
    let settleResult;
    const result = new Promise((resolve, reject) => {
      settleResult = { resolve, reject };
    });
    result.catch(() => {});

    const take = (chunk) => {
      progress = { seq: chunk.seq, done: chunk.done };
      if (chunk.total !== undefined) progress.total = chunk.total;
      if (!outcome) port.credit(id, 1);
      if (onProgress) {
        try {
          onProgress(progress);
        } catch (error) {
          report(error);
        }
      }
      return { done: false, value: chunk.items };
    };
    const finish = () => {
      finished = true;
      return outcome.error ? Promise.reject(outcome.error) : Promise.resolve({ done: true, value: outcome.value });
    };
    const end = (value, error) => {
      if (outcome) return;
      outcome = error ? { error } : { value };
      signal?.removeEventListener('abort', onAbort);
      if (error) settleResult.reject(error);
      else settleResult.resolve(value);
      // Given up on here (signal, timeout): what is buffered is not worth handing out.
      if (error instanceof CallCancelledError || error instanceof CallTimeoutError) buffer.length = 0;
      if (buffer.length === 0) for (const waiter of waiters.splice(0)) finish().then(waiter.resolve, waiter.reject);
    };
    const onChunk = (chunk) => {
      if (finished || outcome) return;
      const waiter = waiters.shift();
      if (waiter) waiter.resolve(take(chunk));
      else buffer.push(chunk);
    };
    const onAbort = () => {
      port.cancel(id);
      end(undefined, new CallCancelledError(method, signal.reason));
    };

    if (signal?.aborted) {
      end(undefined, new CallCancelledError(method, signal.reason));
    } else {
      signal?.addEventListener('abort', onAbort, { once: true });
      port.stream(id, method, params, timeout ?? undefined, window, onChunk).then(
        (reply) => (reply?.ok ? end(reply.result) : end(undefined, rebuild(method, reply?.error))),
        (error) => end(undefined, new Error(`${name}: could not stream ${method}: ${error?.message ?? error}`)),
      );
    }

    return {
      get progress() {
        return progress;
      },
      result,
      next() {
        if (finished) return Promise.resolve({ done: true, value: undefined });
        if (buffer.length > 0) return Promise.resolve(take(buffer.shift()));
        if (outcome) return finish();
        return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
      },
      return(value) {
        if (!finished) {
          finished = true;
          buffer.length = 0;
          for (const waiter of waiters.splice(0)) waiter.resolve({ done: true, value: undefined });
          if (!outcome) {
            port.cancel(id);
            end(undefined, new CallCancelledError(method, 'the stream was closed by its consumer'));
          }
        }
        return Promise.resolve({ done: true, value });
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  function on(event, listener) {
    if (typeof event !== 'string' || event === '') throw new TypeError('event must be a non-empty string');
    if (typeof listener !== 'function') throw new TypeError('listener must be a function');
    let set = listeners.get(event);
    if (!set) {
      const created = new Set();
      set = created;
      listeners.set(event, created);
      const dispatch = (params) => {
        for (const entry of [...(listeners.get(event) ?? [])]) {
          try {
            entry(params, event);
          } catch (error) {
            report(error);
          }
        }
      };
      const refused = (error) => {
        // Forget the refused subscription, so a later on() asks main again.
        if (listeners.get(event) === created) listeners.delete(event);
        report(error);
      };
      port.subscribe(event, dispatch).then((outcome) => outcome?.ok || refused(rebuild(event, outcome?.error)), refused);
    }
    // Wrapped so subscribing the same function twice gives two independent subscriptions.
    const entry = (params, eventName) => listener(params, eventName);
    set.add(entry);
    return () => {
      if (!set.delete(entry) || set.size > 0 || listeners.get(event) !== set) return;
      listeners.delete(event);
      port.unsubscribe(event);
    };
  }

  const api = Object.freeze({ call, stream, on, RpcError, CallCancelledError, CallTimeoutError, ConnectionClosedError });
  if (Object.prototype.hasOwnProperty.call(globalThis, name)) {
    throw new Error(`window.${name} already exists; give exposeBridge another name`);
  }
  Object.defineProperty(globalThis, name, { value: api, enumerable: true });
}
