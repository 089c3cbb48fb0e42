// The transport-free JSON-RPC 2.0 client: ids, pending calls, cancellation, events, progress,
// streams, reply metadata and retries. A transport only moves parsed messages; see Transport in
// index.d.ts for its four members.

import { checkMethod, checkParams, checkTimeout } from './checks.js';
import { CallCancelledError, CallTimeoutError, ConnectionClosedError, ErrorCodes, RpcError, reportToConsole } from './errors.js';
import { clientRetry, pause, retryPolicy, retryWait } from './retry.js';
import { CallStream } from './stream.js';

const CANCEL_METHOD = '$/cancelRequest';
const PROGRESS_METHOD = '$/progress';
const STREAM_METHOD = '$/stream';
const CREDIT_METHOD = '$/stream/credit';
const DEFAULT_WINDOW = 16;

export class RpcClient {
  #transport;
  #trace;
  /** With a trace: request id -> { method, at } (performance.now() when sent), for the reply's duration. */
  #sentAt = null;
  #onError;
  #defaultTimeout;
  /** The `retry` option, checked: `{ base, methods }` or null. */
  #retry;
  /** The host's idempotent methods as a Set, for the `$/ready` list it was made from. */
  #idempotent = { list: undefined, set: new Set() };
  #nextId = 1;
  /** id -> { method, resolve, reject, signal, onAbort, timer, offProgress, meta, chunks } */
  #pending = new Map();
  /** method -> Set of notification handlers */
  #handlers = new Map();
  /** progress token -> Set of handlers */
  #progress = new Map();
  /** request id -> the CallStream its `$/stream` chunks go to */
  #streams = new Map();
  #closeListeners = new Set();
  #closing = false;
  /** Set once the transport has closed: the error every later call rejects with. */
  #closedError = null;
  #unsubscribeTransport;

  /**
   * @param transport `{ send, onMessage, onClose, close }`
   * @param options `{ timeout, trace, onError, retry }`
   */
  constructor(transport, { timeout, trace, onError, retry } = {}) {
    this.#transport = transport;
    this.#defaultTimeout = checkTimeout(timeout);
    this.#retry = clientRetry(retry, 'RpcClient');
    if (trace != null && typeof trace !== 'function') throw new TypeError('trace must be a function');
    this.#trace = trace;
    if (trace) this.#sentAt = new Map();
    this.#onError = onError ?? reportToConsole('bridge client');
    const offMessage = transport.onMessage((message) => this.#receive(message));
    const offClose = transport.onClose((error) => this.#handleClose(error));
    this.#unsubscribeTransport = () => {
      offMessage?.();
      offClose?.();
    };
  }

  /** True once close() was called or the transport closed; calls then reject at once. */
  get closed() {
    return this.#closing || this.#closedError !== null;
  }

  /**
   * Send a request and resolve with its result.
   * Rejects with RpcError (the host's error), CallCancelledError (signal aborted),
   * CallTimeoutError (timeout ms passed) or ConnectionClosedError.
   * `caller` goes out as the request's `$caller`: the identity the host takes the call for
   * (a trusted transport, such as Electron's main process, asserting who it forwards for).
   * `meta: true` asks the host how the reply came about (`$meta.info`) and resolves with
   * `{ result, meta }`. A streaming method's `$/stream` items are collected: it resolves with them.
   * `retry` (else the client's) retries an idempotent call the host refused with -32003, -32004
   * or -32005, within `timeout`; see retry.js.
   */
  call(method, params, { signal, timeout = this.#defaultTimeout, onProgress, caller, meta, retry, idempotent } = {}) {
    let policy = null;
    try {
      checkMethod(method);
      checkParams(params);
      timeout = checkTimeout(timeout);
      if (meta === true) params = withReplyInfo(params);
      else if (meta !== undefined && meta !== false) throw new TypeError('meta must be true or false');
      if (idempotent !== undefined && typeof idempotent !== 'boolean') throw new TypeError('idempotent must be true or false');
      if (retry !== undefined || this.#retry) policy = retryPolicy(this.#retry, method, retry);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.closed) return Promise.reject(this.#closedErrorFor(method));
    if (signal?.aborted) return Promise.reject(new CallCancelledError(method, signal.reason));
    const options = { signal, timeout, onProgress, caller, meta: meta === true };
    if (policy && this.#isIdempotent(method, idempotent)) return this.#retrying(method, params, options, policy);
    return this.#request(this.#nextId++, method, params, options);
  }

  /**
   * Try an idempotent call again while the host refuses it and the policy allows: each wait is
   * the policy's (see retryWait), and one that would end past the call's timeout is not taken.
   * The timeout covers every try; the signal ends a wait at once.
   */
  async #retrying(method, params, options, policy) {
    const { signal, timeout } = options;
    const deadline = timeout === undefined ? undefined : Date.now() + timeout;
    for (let attempt = 1; ; attempt++) {
      const left = deadline === undefined ? undefined : Math.max(0, deadline - Date.now());
      try {
        return await this.#request(this.#nextId++, method, params, { ...options, timeout: left, reportedTimeout: timeout });
      } catch (error) {
        const wait = retryWait(policy, attempt, error);
        if (wait === undefined || (deadline !== undefined && Date.now() + wait >= deadline)) throw error;
        await this.#pause(policy, wait, signal);
        if (signal?.aborted) throw new CallCancelledError(method, signal.reason);
        if (this.closed) throw this.#closedErrorFor(method);
      }
    }
  }

  /** A retry's wait, cut short by the call's signal or the connection closing. */
  #pause(policy, ms, signal) {
    const wake = new AbortController();
    const onAbort = () => wake.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const offClose = this.onClose(onAbort);
    return pause(policy, ms, wake.signal).finally(() => {
      signal?.removeEventListener('abort', onAbort);
      offClose();
    });
  }

  /** Whether `method` streams, by the host's `$/ready` list (a SidecarClient's `ready`). */
  #isStream(method) {
    const list = this.ready?.streams;
    return Array.isArray(list) && list.includes(method);
  }

  /** Whether `method` is safe to send again: the call's say, else the host's `$/ready` list (a SidecarClient's `ready`). */
  #isIdempotent(method, option) {
    if (option !== undefined) return option;
    const list = this.ready?.idempotent;
    if (!Array.isArray(list)) return false;
    if (this.#idempotent.list !== list) this.#idempotent = { list, set: new Set(list) };
    return this.#idempotent.set.has(method);
  }

  /**
   * Call a streaming method: an async iterable of each `$/stream` chunk's `items`. With named
   * params the stream is paced: `$meta.stream.window` chunks at first, then one more credit
   * each time the consumer takes a chunk, so a slow loop body slows the host's generator.
   * Positional params cannot carry `$meta`: such a stream is not paced. Ends with the reply
   * `{ items, chunks }` (the iterator's return value and `.result`); throws the host's error
   * after the chunks sent before it; `break`, `return()` or the signal cancel it on the host.
   * `caller` is the request's `$caller`, as for call().
   */
  stream(method, params, { signal, timeout = this.#defaultTimeout, window = DEFAULT_WINDOW, onProgress, caller } = {}) {
    checkMethod(method);
    checkParams(params);
    timeout = checkTimeout(timeout);
    if (!(Number.isSafeInteger(window) && window >= 1)) throw new TypeError('window must be a positive integer');
    if (onProgress !== undefined && typeof onProgress !== 'function') throw new TypeError('onProgress must be a function');
    const paced = !Array.isArray(params);
    const stream = new CallStream(method, onProgress);
    if (this.closed) return stream._fail(this.#closedErrorFor(method));
    if (signal?.aborted) return stream._fail(new CallCancelledError(method, signal.reason));

    const id = this.#nextId++;
    if (paced) {
      const meta = params?.$meta && typeof params.$meta === 'object' ? params.$meta : {};
      params = { ...params, $meta: { ...meta, stream: { ...meta.stream, window } } };
    }
    this.#streams.set(id, stream);
    stream._bind({
      // One credit per chunk taken; none once the reply came, the host is done with the id.
      credit: paced ? () => this.#sendQuietly({ jsonrpc: '2.0', method: CREDIT_METHOD, params: { id, credit: 1 } }) : () => {},
      cancel: (error) => this.#giveUp(id, error),
      report: (error) => this.#report(error),
    });
    // Ended synchronously with the reply, so no credit goes out for a finished stream.
    const onSettled = (value, error) => {
      if (this.#streams.get(id) === stream) this.#streams.delete(id);
      stream._end(value, error);
    };
    this.#request(id, method, params, { signal, timeout, onSettled, caller }).catch(() => {});
    return stream;
  }

  #request(id, method, params, { signal, timeout, onProgress, onSettled, caller, meta = false, reportedTimeout = timeout }) {
    const message = { jsonrpc: '2.0', id, method };
    if (params !== undefined) message.params = params;
    if (caller !== undefined) message.$caller = caller;
    let resolve;
    let reject;
    const promise = new Promise((resolvePromise, rejectPromise) => {
      resolve = resolvePromise;
      reject = rejectPromise;
    });
    // No closures beyond the promise's own unless the call uses a signal, a timeout or progress:
    // this is the hot path of a pipelined client.
    const entry = { method, resolve, reject, signal, onAbort: undefined, timer: undefined, offProgress: undefined, meta, chunks: undefined };
    if (onSettled) {
      entry.resolve = (value) => (onSettled(value), resolve(value));
      entry.reject = (error) => (onSettled(undefined, error), reject(error));
    }
    this.#pending.set(id, entry);
    // Registered before sending: the host may report progress before send() returns.
    if (onProgress) entry.offProgress = this.onProgress(id, onProgress);
    if (signal) {
      entry.onAbort = () => this.#giveUp(id, new CallCancelledError(method, signal.reason));
      signal.addEventListener('abort', entry.onAbort, { once: true });
    }
    if (timeout !== undefined) {
      entry.timer = setTimeout(() => this.#giveUp(id, new CallTimeoutError(method, reportedTimeout)), timeout);
    }
    try {
      this.#send(message);
    } catch (error) {
      this.#settle(id)?.reject(error);
    }
    return promise;
  }

  /** Send a notification: no id, no reply; `caller` as for call(). Throws ConnectionClosedError once closed. */
  notify(method, params, { caller } = {}) {
    checkMethod(method);
    checkParams(params);
    if (this.closed) throw this.#closedErrorFor(method);
    const message = { jsonrpc: '2.0', method };
    if (params !== undefined) message.params = params;
    if (caller !== undefined) message.$caller = caller;
    this.#send(message);
  }

  /** Handle the host's notifications named `method`. Returns a function that unsubscribes. */
  on(method, handler) {
    checkMethod(method);
    if (typeof handler !== 'function') throw new TypeError('handler must be a function');
    return addTo(this.#handlers, method, handler);
  }

  /** Handle `$/progress` values for `token` (a call's id, or a token passed in `$meta`). */
  onProgress(token, handler) {
    if (typeof handler !== 'function') throw new TypeError('handler must be a function');
    return addTo(this.#progress, token, handler);
  }

  /** Called once when the connection closes, with the error pending calls rejected with. */
  onClose(listener) {
    if (this.#closedError) {
      queueMicrotask(() => listener(this.#closedError));
      return () => {};
    }
    this.#closeListeners.add(listener);
    return () => this.#closeListeners.delete(listener);
  }

  /**
   * Stop sending and close the transport; resolves with whatever the transport's close()
   * resolves with (the Node transport: the exit code). Calls already in flight may still
   * get their responses; whatever is pending when the transport closes rejects.
   */
  close() {
    this.#closing = true;
    try {
      return Promise.resolve(this.#transport.close());
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #send(message) {
    if (this.#trace) this.#traceSend(message);
    this.#transport.send(message);
  }

  #traceSend(message) {
    if (message.method !== undefined && message.id !== undefined) {
      this.#sentAt.set(message.id, { method: message.method, at: performance.now() });
    }
    this.#trace('send', message);
  }

  /** The trace's view of a message received: for a reply, its request's method and how long it took. */
  #traceReceive(message) {
    let details;
    for (const item of Array.isArray(message) ? message : [message]) {
      if (item === null || typeof item !== 'object' || item.method !== undefined) continue;
      const sent = this.#sentAt.get(item.id);
      if (sent === undefined) continue;
      this.#sentAt.delete(item.id);
      if (item === message) details = { method: sent.method, durationMs: round3(performance.now() - sent.at) };
    }
    this.#trace('receive', message, details);
  }

  #sendQuietly(message) {
    try {
      this.#send(message);
    } catch {
      // The transport is going away; the close path reports that.
    }
  }

  /** Stop waiting for call `id`: tell the host, then reject. */
  #giveUp(id, error) {
    const entry = this.#settle(id);
    if (!entry) return;
    if (!this.#closedError) {
      try {
        this.#send({ jsonrpc: '2.0', method: CANCEL_METHOD, params: { id } });
      } catch {
        // The transport is going away; the close path reports that.
      }
    }
    entry.reject(error);
  }

  /** Remove a pending call and its listeners; returns it, or undefined if already settled. */
  #settle(id) {
    const entry = this.#pending.get(id);
    if (!entry) return undefined;
    this.#pending.delete(id);
    if (entry.timer !== undefined) clearTimeout(entry.timer);
    if (entry.onAbort) entry.signal.removeEventListener('abort', entry.onAbort);
    entry.offProgress?.();
    return entry;
  }

  #receive(message) {
    if (this.#trace) this.#traceReceive(message);
    if (Array.isArray(message)) {
      for (const item of message) this.#receiveOne(item);
    } else {
      this.#receiveOne(message);
    }
  }

  #receiveOne(message) {
    if (message === null || typeof message !== 'object' || Array.isArray(message)) {
      this.#report(new Error(`ignored a message that is not a JSON-RPC object: ${JSON.stringify(message)}`));
      return;
    }
    if (typeof message.method === 'string') {
      if (message.id === undefined || message.id === null) this.#dispatchNotification(message);
      else this.#refuseRequest(message);
      return;
    }
    if ('result' in message || 'error' in message) {
      const entry = this.#settle(message.id);
      // An unknown id is a call we gave up on (cancelled, timed out) or a host bug: ignore it.
      if (!entry) {
        if (message.id === null && message.error) {
          this.#report(RpcError.fromResponse(message.error));
        }
        return;
      }
      if ('error' in message) {
        const error = RpcError.fromResponse(message.error);
        if (message.$meta !== undefined) error.meta = message.$meta;
        entry.reject(error);
      } else {
        // A streaming method called with call(): its items, not the closing reply's totals (none
        // at all when it yielded nothing: the host's `$/ready` lists its streaming methods).
        const collecting = !this.#streams.has(message.id); // a call(), not a stream() (whose result is the totals)
        const result = entry.chunks !== undefined ? entry.chunks.flat()
          : collecting && this.#isStream(entry.method) ? [] : message.result;
        entry.resolve(entry.meta ? { result, meta: message.$meta } : result);
      }
      return;
    }
    this.#report(new Error(`ignored a message that is neither a response nor a notification: ${JSON.stringify(message)}`));
  }

  #dispatchNotification({ method, params }) {
    if (method === STREAM_METHOD && params && typeof params === 'object') {
      const stream = this.#streams.get(params.id);
      if (stream) stream._chunk(params);
      else this.#collect(params);
    } else if (method === PROGRESS_METHOD && params && typeof params === 'object') {
      for (const handler of this.#progress.get(params.token) ?? []) {
        this.#invoke(handler, params.value, method);
      }
    }
    for (const handler of this.#handlers.get(method) ?? []) {
      this.#invoke(handler, params, method);
    }
  }

  /** A `$/stream` chunk for a call() (not a stream()): kept until the reply resolves the call with every item. */
  #collect({ id, items }) {
    const entry = this.#pending.get(id);
    if (entry && Array.isArray(items)) (entry.chunks ??= []).push(items);
  }

  /** This client serves no methods; answer so the host is not left waiting. */
  #refuseRequest({ id, method }) {
    try {
      this.#send({
        jsonrpc: '2.0',
        id,
        error: { code: ErrorCodes.MethodNotFound, message: `client does not handle ${method}` },
      });
    } catch (error) {
      this.#report(error);
    }
  }

  #invoke(handler, params, method) {
    try {
      handler(params, method);
    } catch (error) {
      this.#report(error);
    }
  }

  #report(error) {
    try {
      this.#onError(error);
    } catch {
      // An error reporter that throws must not break message dispatch.
    }
  }

  #handleClose(cause) {
    if (this.#closedError) return;
    this.#closedError =
      cause instanceof ConnectionClosedError
        ? cause
        : new ConnectionClosedError(cause ? `connection closed: ${cause.message}` : 'connection closed', cause ? { cause } : undefined);
    this.#unsubscribeTransport();
    for (const id of [...this.#pending.keys()]) this.#settle(id).reject(this.#closedError);
    this.#progress.clear();
    this.#streams.clear();
    this.#sentAt?.clear();
    for (const listener of this.#closeListeners) {
      try {
        listener(this.#closedError);
      } catch (error) {
        this.#report(error);
      }
    }
    this.#closeListeners.clear();
  }

  #closedErrorFor(method) {
    return this.#closedError ?? new ConnectionClosedError(`cannot send ${method}: the client is closing`);
  }
}

/**
 * Named params (or none) with `$meta.info: true` merged into any `$meta` given: the host then adds
 * `$meta` `{ handlerMs, cached?, shared? }` to the reply. Positional params cannot carry `$meta`.
 */
export function withReplyInfo(params) {
  if (Array.isArray(params)) {
    throw new TypeError('meta: true needs params by name (an object) or none: positional params cannot carry $meta');
  }
  const meta = params?.$meta && typeof params.$meta === 'object' ? params.$meta : {};
  return { ...params, $meta: { ...meta, info: true } };
}

function addTo(map, key, handler) {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  // Wrapped so subscribing the same function twice gives two independent subscriptions.
  const entry = (...args) => handler(...args);
  set.add(entry);
  return () => {
    set.delete(entry);
    if (set.size === 0 && map.get(key) === set) map.delete(key);
  };
}

function round3(ms) {
  return Math.round(ms * 1000) / 1000;
}

/**
 * A `trace` option that writes one line per message, in vscode-jsonrpc's format ("Sending
 * request 'add - (1)'.", "Received response 'add - (1)' in 2.512ms."); `verbose` adds the
 * params, result or error. `write` gets each line (default: console.error).
 */
export function consoleTrace({ verbose = false, write = (line) => console.error(line) } = {}) {
  if (typeof write !== 'function') throw new TypeError('write must be a function');
  return (direction, message, details) => write(traceLine(direction, message, details, verbose));
}

function traceLine(direction, message, details, verbose) {
  const stamp = `[Trace - ${new Date().toISOString().slice(11, 23)}] `;
  if (Array.isArray(message)) {
    const text = `${stamp}${direction === 'send' ? 'Sending' : 'Received'} a batch of ${message.length} messages.`;
    return verbose ? `${text}\n${JSON.stringify(message)}` : text;
  }
  const verb = direction === 'send' ? 'Sending' : 'Received';
  const { id, method } = message ?? {};
  let text;
  let body;
  if (typeof method === 'string') {
    const kind = id === undefined || id === null ? 'notification' : 'request';
    text = kind === 'request' ? `${verb} request '${method} - (${id})'.` : `${verb} notification '${method}'.`;
    body = message.params === undefined ? undefined : `Params: ${JSON.stringify(message.params)}`;
  } else {
    const name = details ? `${details.method} - (${id})` : `(${id})`;
    text = `${verb} response '${name}'${details ? ` in ${details.durationMs}ms` : ''}.`;
    if (message?.error) text += ` Request failed: ${message.error.message} (${message.error.code}).`;
    body = message?.error ? (message.error.data === undefined ? undefined : `Error data: ${JSON.stringify(message.error.data)}`)
      : `Result: ${JSON.stringify(message?.result)}`;
  }
  return verbose && body !== undefined ? `${stamp}${text}\n${body}` : `${stamp}${text}`;
}

/**
 * The trace the environment asks for: BRIDGE_TRACE=1 (or "messages") a line per message,
 * "verbose" with params and results, each written by `write`; 0, "off" or unset: none.
 */
export function traceFromEnv(value, write) {
  if (value === undefined || value === '' || value === '0' || value === 'off' || value === 'false') return undefined;
  if (value === '1' || value === 'true' || value === 'messages') return consoleTrace({ write });
  if (value === 'verbose') return consoleTrace({ verbose: true, write });
  throw new TypeError(`BRIDGE_TRACE must be 0, 1, messages or verbose, not ${JSON.stringify(value)}`);
}
