// Electron main process: serve an RpcClient to renderer windows over ipcMain.
// The renderer half is electron-preload.js; the two speak over a few IPC channels named
// `${channel}:<kind>`. Everything crossing is plain data: Electron's IPC structured-clones
// every message and throws away an Error's code and data, so errors travel as plain objects
// ({ name, code, message, data }) and the preload rebuilds them as classes.
//
// Channels (renderer -> main):
//   :call         invoke  { id, method, params, timeout, progress }  -> outcome
//   :stream       invoke  { id, method, params, timeout, window }    -> outcome, once the stream ended
//   :credit       send    { id, credit }         the page took chunks of stream id: push that many more
//   :cancel       send    id                     abort that call or stream; the client sends $/cancelRequest
//   :subscribe    invoke  event                  -> outcome; the window starts getting the event
//   :unsubscribe  send    event
//   :reset        send                           the page (re)loaded: drop its calls and events
// Channels (main -> renderer, webContents.send):
//   :progress     { id, value }                  a $/progress value of call id
//   :chunk        { id, items, seq, done, total? }  a chunk of stream id
//   :event        { event, params }              a host notification the window subscribed to
//
// Who is calling: main forwards every call and stream with the window's identity as the
// request's `$caller` (caller(event), default { window, frame }), whatever the params' shape, so
// a page can neither choose nor leave out who it is; the host trusts `$caller` over anything in
// params. A page cannot send a JSON-RPC batch: each `:call` is one request.
//
// A stream registers its AbortController in the window's `calls` like a call does, so `:cancel`
// and window teardown stop it. Main takes a chunk from the host's stream only while the page has
// credit (`window` at first, then what `:credit` grants), so a slow page slows the generator;
// at most about two windows of chunks are in flight (one in main, one in the page). A stream's
// outcome carries `chunks`, the number of `:chunk`s pushed, so the page can wait for them all.
//
// Presence follows windows: when a window is destroyed or reloads (`:reset`), main calls the
// `departure` method (default `collab.departed`) itself, without a caller, naming the window's
// participant, so the host ends its collab presence and locks at once. Only main may: a window
// asking for that method is refused whatever `allow` says, and the host accepts it only from
// the connection itself.

import { MAX_TIMEOUT, checkMethod, checkParams } from './checks.js';
import { ConnectionClosedError, ErrorCodes, reportToConsole } from './errors.js';
import { declaresParticipant, participantOf } from './identity.js';

const DEFAULT_WINDOW = 16;
/** The largest window a page may ask for: it is untrusted, and chunks wait in main's memory. */
const MAX_WINDOW = 1024;

/** The host method main calls when a window's participant is gone (`departure` option). */
export const DEPARTURE_METHOD = 'collab.departed';

/**
 * Let renderer windows call `client` (any RpcClient-like object: `call()` and `on()`)
 * through `ipcMain`, limited to the methods in `allow` and the events in `events`.
 * When a window closes or reloads, its participant's departure is sent to the host
 * (`departure`, a method name, or false for none).
 * Returns a function that removes the IPC handlers, aborts calls still running for
 * renderers and drops every event subscription.
 */
export function exposeToRenderers(
  client,
  {
    ipcMain,
    allow,
    events = [],
    channel = 'bridge',
    caller = defaultCaller,
    departure = DEPARTURE_METHOD,
    onError = reportToConsole('bridge electron'),
  } = {},
) {
  if (!client || typeof client.call !== 'function' || typeof client.on !== 'function') {
    throw new TypeError('exposeToRenderers: client must have call() and on() (an RpcClient)');
  }
  if (!ipcMain || typeof ipcMain.handle !== 'function' || typeof ipcMain.on !== 'function') {
    throw new TypeError("exposeToRenderers: pass Electron's ipcMain as the ipcMain option");
  }
  if (typeof channel !== 'string' || channel === '') throw new TypeError('exposeToRenderers: channel must be a non-empty string');
  if (typeof caller !== 'function') throw new TypeError('exposeToRenderers: caller must be a function');
  if (departure !== false) checkMethod(departure);
  const methodAllowed = compileAllowlist(allow, 'allow');
  const eventAllowed = compileAllowlist(events, 'events');

  /** webContents.id -> { contents, calls: Map<id, AbortController>, events: Set<name>, offDestroyed } */
  const windows = new Map();
  /** event name -> { windows: Set<webContents.id>, off }: one host subscription per event */
  const hostEvents = new Map();
  let disposed = false;

  function windowFor(contents) {
    let state = windows.get(contents.id);
    if (!state) {
      const onDestroyed = () => dropWindow(contents.id);
      contents.once('destroyed', onDestroyed);
      state = {
        contents,
        calls: new Map(),
        /** stream id -> { credit, wake }: what the page lets main push */
        flows: new Map(),
        events: new Set(),
        /** the participant id the host knows this window by (from its last call or subscription) */
        participant: null,
        offDestroyed: () => contents.removeListener('destroyed', onDestroyed),
      };
      windows.set(contents.id, state);
    }
    return state;
  }

  /** Abort the window's calls (each sends $/cancelRequest) and drop its events. */
  function resetWindow(state) {
    for (const controller of state.calls.values()) controller.abort();
    state.calls.clear();
    state.flows.clear();
    for (const name of state.events) leaveEvent(name, state.contents.id);
    state.events.clear();
  }

  function dropWindow(id) {
    const state = windows.get(id);
    if (!state) return;
    windows.delete(id);
    state.offDestroyed();
    resetWindow(state);
    depart(state);
  }

  /**
   * The window's page is gone (closed or reloaded): tell the host its participant departed, as
   * main itself (no caller), unless another live window is the same participant. A host
   * without the method, or one already closed, needs no telling.
   */
  function depart(state) {
    const { participant } = state;
    state.participant = null;
    if (departure === false || participant === null) return;
    for (const other of windows.values()) if (other.participant === participant) return;
    let sent;
    try {
      sent = Promise.resolve(client.call(departure, { participant }));
    } catch (error) {
      sent = Promise.reject(error);
    }
    sent.catch((error) => {
      if (error?.code === ErrorCodes.MethodNotFound || error instanceof ConnectionClosedError) return;
      report(error);
    });
  }

  function joinEvent(name, id) {
    let entry = hostEvents.get(name);
    if (!entry) {
      entry = { windows: new Set(), off: null };
      hostEvents.set(name, entry);
      entry.off = client.on(name, (params) => forwardEvent(name, params));
    }
    entry.windows.add(id);
  }

  function leaveEvent(name, id) {
    const entry = hostEvents.get(name);
    if (!entry) return;
    entry.windows.delete(id);
    if (entry.windows.size === 0) {
      hostEvents.delete(name);
      entry.off?.();
    }
  }

  /** An event whose params carry `$meta.to`, a list of participant ids, goes only to those windows. */
  function forwardEvent(name, params) {
    const to = Array.isArray(params?.$meta?.to) ? new Set(params.$meta.to) : null;
    for (const id of hostEvents.get(name)?.windows ?? []) {
      const state = windows.get(id);
      if (state && (to === null || to.has(state.participant))) push(state.contents, `${channel}:event`, { event: name, params });
    }
  }

  function push(contents, channelName, payload) {
    if (contents.isDestroyed()) return;
    try {
      contents.send(channelName, payload);
    } catch (error) {
      report(error);
    }
  }

  function report(error) {
    try {
      onError(error);
    } catch {
      // A reporter that throws must not break the IPC handlers.
    }
  }

  /**
   * The window's identity from `caller(event)`. One the host would not tell from its own
   * connection is refused: the window's calls would pass for the main process's.
   */
  function identify(event) {
    const identity = caller(event);
    if (!declaresParticipant(identity)) {
      throw new TypeError(
        `exposeToRenderers: caller(event) returned ${asText(identity)}, which names no participant; a window's calls would pass for the main process`,
      );
    }
    return identity;
  }

  /**
   * The checks a call and a stream share: the window is alive, the request well formed, the
   * method allowed, the caller known, the id free. Returns { refused } or what the handler needs.
   */
  function admit(event, request) {
    if (disposed || event.sender.isDestroyed()) return { refused: failure(closedError()) };
    let checked;
    let identity;
    try {
      checked = checkRequest(request);
      if (!methodAllowed(checked.method) || checked.method === departure) {
        return { refused: failure(notAllowed('method', checked.method)) };
      }
      identity = identify(event);
    } catch (error) {
      return { refused: failure(error) };
    }
    const contents = event.sender;
    const state = windowFor(contents);
    state.participant = participantOf(identity);
    if (state.calls.has(checked.id)) {
      return { refused: failure(new TypeError(`call id ${checked.id} is already in use by this window`)) };
    }
    return { checked, identity, contents, state };
  }

  async function handleCall(event, request) {
    const admitted = admit(event, request);
    if (admitted.refused) return admitted.refused;
    const { checked, identity, contents, state } = admitted;
    const { id, method, params, timeout, progress } = checked;
    const controller = new AbortController();
    state.calls.set(id, controller);
    try {
      const result = await client.call(method, withoutMeta(params), {
        signal: controller.signal,
        timeout,
        caller: identity,
        onProgress: progress ? (value) => push(contents, `${channel}:progress`, { id, value }) : undefined,
      });
      return { ok: true, result };
    } catch (error) {
      return failure(error);
    } finally {
      if (state.calls.get(id) === controller) state.calls.delete(id);
    }
  }

  async function handleStream(event, request) {
    if (typeof client.stream !== 'function') return failure(new TypeError('the client exposed to renderers has no stream()'));
    const admitted = admit(event, request);
    if (admitted.refused) return admitted.refused;
    const { checked, identity, contents, state } = admitted;
    const { id, method, params, timeout, window } = checked;
    const controller = new AbortController();
    const flow = { credit: window, wake: null };
    state.calls.set(id, controller);
    state.flows.set(id, flow);
    let pushed = 0;
    try {
      const stream = client.stream(method, withoutMeta(params), { signal: controller.signal, timeout, window, caller: identity });
      // Once the host's reply (or an abort) came, what is left is already in memory: push it.
      let ended = false;
      const end = stream.result.then(
        () => (ended = true),
        () => (ended = true),
      );
      for (;;) {
        while (flow.credit <= 0 && !ended) {
          await Promise.race([new Promise((resolve) => (flow.wake = resolve)), end]);
        }
        const step = await stream.next();
        if (step.done) return { ok: true, result: step.value, chunks: pushed };
        flow.credit--;
        push(contents, `${channel}:chunk`, { id, items: step.value, ...stream.progress });
        pushed++;
      }
    } catch (error) {
      return { ...failure(error), chunks: pushed };
    } finally {
      if (state.calls.get(id) === controller) state.calls.delete(id);
      if (state.flows.get(id) === flow) state.flows.delete(id);
    }
  }

  function handleCredit(event, message) {
    const flow = windows.get(event.sender.id)?.flows.get(message?.id);
    const credit = message?.credit;
    if (!flow || !Number.isSafeInteger(credit) || credit < 1 || credit > MAX_WINDOW) return;
    flow.credit = Math.min(flow.credit + credit, MAX_WINDOW);
    flow.wake?.();
  }

  function handleCancel(event, id) {
    windows.get(event.sender.id)?.calls.get(id)?.abort();
  }

  function handleSubscribe(event, name) {
    if (disposed || event.sender.isDestroyed()) return failure(closedError());
    if (typeof name !== 'string' || name === '') return failure(new TypeError('event must be a non-empty string'));
    if (!eventAllowed(name)) return failure(notAllowed('event', name));
    const state = windowFor(event.sender);
    try {
      state.participant = participantOf(identify(event));
    } catch (error) {
      return failure(error);
    }
    if (!state.events.has(name)) {
      state.events.add(name);
      joinEvent(name, state.contents.id);
    }
    return { ok: true };
  }

  function handleUnsubscribe(event, name) {
    const state = windows.get(event.sender.id);
    if (state?.events.delete(name)) leaveEvent(name, state.contents.id);
  }

  function handleReset(event) {
    const state = windows.get(event.sender.id);
    if (!state) return;
    resetWindow(state);
    depart(state);
  }

  const listeners = {
    [`${channel}:cancel`]: handleCancel,
    [`${channel}:credit`]: handleCredit,
    [`${channel}:unsubscribe`]: handleUnsubscribe,
    [`${channel}:reset`]: handleReset,
  };
  ipcMain.handle(`${channel}:call`, handleCall);
  ipcMain.handle(`${channel}:stream`, handleStream);
  ipcMain.handle(`${channel}:subscribe`, handleSubscribe);
  for (const [name, listener] of Object.entries(listeners)) ipcMain.on(name, listener);

  return function dispose() {
    if (disposed) return;
    disposed = true;
    ipcMain.removeHandler(`${channel}:call`);
    ipcMain.removeHandler(`${channel}:stream`);
    ipcMain.removeHandler(`${channel}:subscribe`);
    for (const [name, listener] of Object.entries(listeners)) ipcMain.removeListener(name, listener);
    for (const id of [...windows.keys()]) dropWindow(id);
  };
}

/** The default caller identity: the window's webContents id and the calling frame's URL. */
export function defaultCaller(event) {
  return { window: event.sender.id, frame: event.senderFrame?.url ?? event.frameId };
}

/**
 * Named params lose any `$meta` the page sent: its `caller` would lose to `$caller` anyway, but a
 * `progressToken` naming another call's id would steer the host's progress into that call's
 * window, and `info` and `stream` are main's to set. Positional params and none go as they are.
 */
function withoutMeta(params) {
  if (params === undefined || Array.isArray(params) || !Object.hasOwn(params, '$meta')) return params;
  const named = {};
  for (const key of Object.keys(params)) if (key !== '$meta') named[key] = params[key];
  return named;
}

function asText(value) {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Check a page's request: it comes from a web page, so nothing in it is trusted. */
function checkRequest(request) {
  if (request === null || typeof request !== 'object') throw new TypeError('malformed bridge request');
  const { id, method, params, timeout, progress, window = DEFAULT_WINDOW } = request;
  if (!Number.isSafeInteger(id) || id < 1) throw new TypeError('malformed bridge request: bad id');
  checkMethod(method);
  checkParams(params);
  // Stricter than checkTimeout: a number or nothing (the preload turns null into nothing).
  if (timeout !== undefined && (typeof timeout !== 'number' || !(timeout >= 0) || timeout > MAX_TIMEOUT)) {
    throw new TypeError(`timeout must be a number of milliseconds from 0 to ${MAX_TIMEOUT}`);
  }
  if (!Number.isSafeInteger(window) || window < 1 || window > MAX_WINDOW) {
    throw new TypeError(`window must be an integer from 1 to ${MAX_WINDOW}`);
  }
  return { id, method, params, timeout, progress: progress === true, window };
}

/**
 * `names` lists exact names and "prefix.*" patterns ("demo.*" allows "demo.add" and
 * "demo.x.y", not "demo" itself). Any other use of "*" is refused at setup.
 */
function compileAllowlist(names, option) {
  if (!Array.isArray(names)) {
    throw new TypeError(`exposeToRenderers: ${option} must be an array of names and "prefix.*" patterns`);
  }
  const exact = new Set();
  const prefixes = [];
  for (const name of names) {
    if (typeof name !== 'string' || name === '') throw new TypeError(`exposeToRenderers: ${option} entries must be non-empty strings`);
    const star = name.indexOf('*');
    if (star === -1) exact.add(name);
    else if (star === name.length - 1 && name.endsWith('.*') && name.length > 2) prefixes.push(name.slice(0, -1));
    else throw new TypeError(`exposeToRenderers: ${option} entry "${name}" is neither a name nor a "prefix.*" pattern`);
  }
  return (name) => exact.has(name) || prefixes.some((prefix) => name.length > prefix.length && name.startsWith(prefix));
}

function notAllowed(kind, name) {
  const list = kind === 'method' ? 'allow' : 'events';
  const error = new Error(`${kind} "${name}" is not allowed from renderers (it is not in the ${list} list given to exposeToRenderers)`);
  error.name = 'RpcError';
  error.code = ErrorCodes.MethodNotFound;
  error.data = { [kind]: name, reason: 'not allowed' };
  return error;
}

function closedError() {
  const error = new Error('the bridge is no longer exposed to renderers');
  error.name = 'ConnectionClosedError';
  return error;
}

/** An error as plain data that survives IPC; electron-preload rebuilds the class from `name`. */
function failure(error) {
  const encoded = { name: 'Error', message: String(error?.message ?? error) };
  if (error !== null && typeof error === 'object') {
    if (typeof error.name === 'string') encoded.name = error.name;
    if (Number.isInteger(error.code)) encoded.code = error.code;
    if (error.data !== undefined) encoded.data = toCloneable(error.data);
    if (typeof error.timeout === 'number') encoded.timeout = error.timeout;
  }
  return { ok: false, error: encoded };
}

/** Error data normally came from JSON; anything else goes through JSON so IPC can clone it. */
function toCloneable(value) {
  try {
    structuredClone(value);
    return value;
  } catch {
    try {
      return JSON.parse(JSON.stringify(value));
    } catch {
      return String(value);
    }
  }
}
