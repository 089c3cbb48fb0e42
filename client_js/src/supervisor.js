// Supervision: one client-like object in front of a bridge host that is restarted when it
// crashes or stops answering health pings. Transport-free: `start` makes each client
// (the Node entry point's superviseSidecar() passes spawnSidecar).

import { MAX_TIMEOUT, checkMethod, checkParams, checkTimeout } from './checks.js';
import { withReplyInfo } from './client.js';
import { CallCancelledError, CallTimeoutError, ConnectionClosedError, RpcError, reportToConsole } from './errors.js';
import { backoffDelay, clientRetry, pause, retryPolicy, retryWait } from './retry.js';

const POLICIES = ['never', 'immediate', 'fixed', 'backoff'];

/** The restart policy used when `restart` leaves a field out. */
export const RESTART_DEFAULTS = Object.freeze({
  policy: 'backoff',
  delay: 500,
  maxDelay: 30_000,
  maxRestarts: 5,
  window: 60_000,
});

/** The health check used when `health` leaves a field out. */
export const HEALTH_DEFAULTS = Object.freeze({
  interval: 5000,
  timeout: 5000,
  failures: 2,
  method: 'rpc.ping',
});

/** A call in flight when the host died, and not retried (it is not idempotent, or there was no host to retry on). */
export class SidecarCrashedError extends ConnectionClosedError {
  constructor(method, crash, { idempotent = false, unresponsive = false, reason } = {}) {
    const why = reason ?? (idempotent ? 'the host was not restarted' : `${method} is not idempotent`);
    const when = describeCrash(crash, unresponsive);
    super(`${method} was in flight when ${when}; it may or may not have run, and was not retried because ${why}`, { cause: crash });
    this.name = 'SidecarCrashedError';
    this.method = method;
    this.exitCode = crash?.exitCode ?? null;
    this.signal = crash?.signal ?? null;
    this.idempotent = idempotent;
  }
}

/** A call or notification made while the host is (re)starting, with `maxQueued` already waiting. */
export class QueueFullError extends Error {
  constructor(method, limit) {
    super(`cannot queue ${method}: ${limit} calls are already waiting for the bridge host to start`);
    this.name = 'QueueFullError';
    this.method = method;
    this.limit = limit;
  }
}

/**
 * Milliseconds to wait before restart number `attempt` (1 for the first restart in the window).
 * `backoff` is exponential with full jitter: uniform in [0, min(maxDelay, delay * 2 ** (attempt - 1))).
 */
export function restartDelay(restart, attempt, random = Math.random) {
  const { policy, delay, maxDelay } = normalizeRestart(restart);
  switch (policy) {
    case 'never':
      return Infinity;
    case 'immediate':
      return 0;
    case 'fixed':
      return delay;
    default:
      return backoffDelay(delay, maxDelay, attempt, random);
  }
}

/**
 * Keeps a bridge host running and presents one client across its restarts.
 * States: idle → starting → ready → crashed → restarting → starting → ... ; close() → stopping → stopped;
 * a first start that fails, or too many restarts within `restart.window`, → failed.
 */
export class Supervisor {
  #start;
  #restart;
  #health;
  #maxQueued;
  #defaultTimeout;
  #retry;
  #onError;

  #state = 'idle';
  /**
   * The live host: `{ client, ready, idempotent, crash, unhealthy, healthFailures, forwards, offClose }`;
   * null unless ready or stopping.
   */
  #session = null;
  /** Entries waiting for a ready host, in order; settled ones are skipped when flushed. */
  #queue = [];
  #queued = 0;
  /** Calls waiting out a retry delay after the host refused them (rate limited, circuit open, busy). */
  #sleeping = new Set();
  #subscriptions = { on: new Map(), onProgress: new Map() };
  #stateListeners = new Set();
  #recoveredListeners = new Set();
  /** Host-side subscriptions kept by subscribe(): made again on every new host before queued calls. */
  #kept = new Set();
  #readyWaiters = [];
  /** When each restart in the current window was scheduled (Date.now()). */
  #restarts = [];
  #restartTimer;
  #healthTimer;
  #starting = null;
  #closePromise = null;
  #failure = null;

  /**
   * @param options `{ start, restart, health, maxQueued, timeout, retry, onError }`; `start()` resolves
   *   with a connected client (`call`, `notify`, `on`, `onProgress`, `onClose`, `close`, optional
   *   `ready` info and `kill()`).
   */
  constructor({ start, restart, health, maxQueued = 1000, timeout, retry, onError } = {}) {
    if (typeof start !== 'function') throw new TypeError('Supervisor: start must be a function that resolves with a client');
    if (!(Number.isInteger(maxQueued) && maxQueued >= 0) && maxQueued !== Infinity) {
      throw new TypeError('Supervisor: maxQueued must be a non-negative integer');
    }
    this.#start = start;
    this.#restart = normalizeRestart(restart);
    this.#health = normalizeHealth(health);
    this.#maxQueued = maxQueued;
    this.#defaultTimeout = checkTimeout(timeout);
    this.#retry = clientRetry(retry, 'Supervisor');
    this.#onError = onError ?? reportToConsole('bridge supervisor');
  }

  /** `idle`, `starting`, `ready`, `crashed`, `restarting`, `stopping`, `stopped` or `failed`. */
  get state() {
    return this.#state;
  }

  /** The `$/ready` params of the current host, or undefined while there is none. */
  get ready() {
    return this.#session?.ready;
  }

  /** The current host's client (a SidecarClient under Node), or undefined while there is none. */
  get client() {
    return this.#session?.client;
  }

  /** True once close() was called or the supervisor gave up; calls then reject at once. */
  get closed() {
    return this.#state === 'stopping' || this.#state === 'stopped' || this.#state === 'failed';
  }

  /** Start the first host (once); resolves with its ready info, rejects if it cannot start. */
  start() {
    if (this.#state === 'idle') this.#launch(0);
    return this.whenReady();
  }

  /** Resolves with the ready info once a host is ready (at once if one is); rejects on failed or close. */
  whenReady() {
    if (this.#state === 'ready') return Promise.resolve(this.#session.ready);
    if (this.closed) return Promise.reject(this.#closedError('wait for the bridge host'));
    return new Promise((resolve, reject) => this.#readyWaiters.push({ resolve, reject }));
  }

  /**
   * Send a request to the current host, or queue it until one is ready. `timeout` counts from
   * this call, across the queue and any retry. A call in flight when the host dies is retried on
   * the next host if it is idempotent (`options.idempotent`, else the host's `$/ready` list),
   * otherwise it rejects with SidecarCrashedError. With a `retry` policy (the call's, else the
   * supervisor's) an idempotent call the host refused (-32003, -32004, -32005) is tried again
   * after a backoff, and `retry.attempts` caps the tries of both kinds; `retry: false` turns both off.
   */
  call(method, params, { signal, timeout = this.#defaultTimeout, onProgress, idempotent, caller, meta, retry } = {}) {
    let policy;
    try {
      checkMethod(method);
      checkParams(params);
      timeout = checkTimeout(timeout);
      if (onProgress !== undefined && typeof onProgress !== 'function') throw new TypeError('onProgress must be a function');
      if (meta === true) withReplyInfo(params);
      else if (meta !== undefined && meta !== false) throw new TypeError('meta must be true or false');
      if (idempotent !== undefined && typeof idempotent !== 'boolean') throw new TypeError('idempotent must be true or false');
      policy = retryPolicy(this.#retry, method, retry);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.closed) return Promise.reject(this.#closedError(`send ${method}`));
    if (signal?.aborted) return Promise.reject(new CallCancelledError(method, signal.reason));
    if (this.#state !== 'ready' && this.#queued >= this.#maxQueued) {
      return Promise.reject(new QueueFullError(method, this.#maxQueued));
    }

    return new Promise((resolve, reject) => {
      const entry = {
        method, params, onProgress, idempotent, caller, meta: meta === true, signal, resolve, reject,
        settled: false, queued: false,
        // null: no policy, so only crash retries (unbounded, as the restart policy allows); false: none.
        retry: policy, attempts: 0, deadline: timeout === undefined ? undefined : Date.now() + timeout,
      };
      if (signal) {
        entry.onAbort = () => this.#abandon(entry, new CallCancelledError(method, signal.reason));
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      if (timeout !== undefined) {
        entry.timer = setTimeout(() => this.#abandon(entry, new CallTimeoutError(method, timeout)), timeout);
      }
      if (this.#state === 'ready') this.#send(entry);
      else this.#enqueue(entry);
    });
  }

  /**
   * Call a streaming method on the current host (waiting for one to be ready), as
   * RpcClient.stream() does. A stream is never retried: one in flight when the host dies
   * throws SidecarCrashedError after the chunks that arrived. `timeout` counts from here.
   */
  stream(method, params, { signal, timeout = this.#defaultTimeout, window, onProgress, caller } = {}) {
    checkMethod(method);
    checkParams(params);
    timeout = checkTimeout(timeout);
    const since = Date.now();
    let cancelled = null;
    let started = null;
    const open = async () => {
      if (this.closed) throw this.#closedError(`send ${method}`);
      if (this.#state !== 'ready') await untilAborted(this.whenReady(), signal, method);
      if (cancelled) throw cancelled;
      const session = this.#session;
      const left = timeout === undefined ? null : Math.max(0, timeout - (Date.now() - since));
      started = session.client.stream(method, params, { signal, timeout: left, window, onProgress, caller });
      return { inner: started, session };
    };
    const crashed = (session, error) => {
      if (!(error instanceof ConnectionClosedError) || error instanceof SidecarCrashedError || !session?.crash) return error;
      return new SidecarCrashedError(method, session.crash, { unresponsive: session.unhealthy, reason: 'streams are not retried' });
    };
    // Closing before a host took the stream: it is never sent. After: the host's stream is returned.
    return new SupervisedStream(open(), crashed, () => {
      cancelled = new CallCancelledError(method, 'the stream was closed by its consumer');
      return started;
    });
  }

  /** Send a notification now, or queue it until a host is ready. Throws once closed or when the queue is full. */
  notify(method, params, { caller } = {}) {
    checkMethod(method);
    checkParams(params);
    if (this.closed) throw this.#closedError(`send ${method}`);
    if (this.#state === 'ready') {
      try {
        this.#session.client.notify(method, params, { caller });
        return;
      } catch (error) {
        // The host died and its close is not reported yet: hold the notification for the next one.
        if (!(error instanceof ConnectionClosedError)) throw error;
      }
    }
    if (this.#queued >= this.#maxQueued) throw new QueueFullError(method, this.#maxQueued);
    this.#enqueue({ method, params, caller, notification: true, settled: false, queued: false });
  }

  /** Handle the host's notifications named `method`, from this host and every later one. */
  on(method, handler) {
    checkMethod(method);
    return this.#subscribe('on', method, handler);
  }

  /** Handle `$/progress` values for `token` (one sent in `$meta.progressToken`), across restarts. */
  onProgress(token, handler) {
    return this.#subscribe('onProgress', token, handler);
  }

  /**
   * Call `method`, one that opens a subscription on the host (`state.subscribe`, `fs.watch`), and
   * keep it: on every restarted host it is called again before any queued call is sent, with
   * params `resume(params, value)` brought up to date from each reply and each notification named
   * in `events` (state.js's `stateSubscription` resumes `state.subscribe` from the last version
   * seen, so the reply holds exactly the missed changes). `onResult(result, { recovered })` gets
   * each reply after a restart; `close(result)` names the `[method, params]` that ends it.
   * Resolves with a handle (`result`, `params`, `close()`) once the first call answered.
   */
  async subscribe(method, params, { resume, events = [], onResult, close, caller, timeout } = {}) {
    checkMethod(method);
    checkParams(params);
    for (const [name, value] of [['resume', resume], ['onResult', onResult], ['close', close]]) {
      if (value !== undefined && typeof value !== 'function') throw new TypeError(`subscribe: ${name} must be a function`);
    }
    if (!Array.isArray(events)) throw new TypeError('subscribe: events must be an array of notification names');
    events.forEach(checkMethod);
    const kept = { method, params, resume, onResult, close, caller, result: undefined, offs: [] };
    kept.offs = events.map((name) => this.on(name, (value) => this.#advance(kept, value)));
    let result;
    try {
      // Idempotent: one in flight when the host dies opened nothing that lasts, so it is sent again.
      result = await this.call(method, params, { caller, timeout, idempotent: true });
    } catch (error) {
      for (const off of kept.offs) off();
      throw error;
    }
    kept.result = result;
    this.#advance(kept, result);
    this.#kept.add(kept);
    return new KeptSubscription(kept, () => this.#unkeep(kept));
  }

  /**
   * Called with `{ attempt, subscriptions }` when a restarted host is ready and every kept
   * subscription was made again on it (each `{ method, params, result }` or `{ ..., error }`).
   */
  onRecovered(listener) {
    if (typeof listener !== 'function') throw new TypeError('listener must be a function');
    const entry = (event) => listener(event);
    this.#recoveredListeners.add(entry);
    return () => this.#recoveredListeners.delete(entry);
  }

  /** Called with `{ state, ...details }` on every state change. */
  onState(listener) {
    if (typeof listener !== 'function') throw new TypeError('listener must be a function');
    const entry = (event) => listener(event);
    this.#stateListeners.add(entry);
    return () => this.#stateListeners.delete(entry);
  }

  /**
   * Stop health checks and restarts, reject queued calls with ConnectionClosedError, and close
   * the current host gracefully (its in-flight calls may finish). Resolves with its exit code.
   */
  close() {
    if (!this.#closePromise) {
      // Assigned before #shutdown runs, so a 'stopping' listener calling close() gets this promise.
      let shutdown;
      this.#closePromise = new Promise((resolve) => {
        shutdown = resolve;
      });
      shutdown(this.#shutdown());
    }
    return this.#closePromise;
  }

  async #shutdown() {
    this.#setState('stopping');
    clearTimeout(this.#restartTimer);
    clearTimeout(this.#healthTimer);
    this.#rejectWaiting(new ConnectionClosedError('the bridge host supervisor was closed'));
    let exitCode = null;
    try {
      let client = this.#session?.client;
      if (!client && this.#starting) client = await this.#starting.catch(() => null);
      if (client) exitCode = await client.close();
    } finally {
      if (this.#session) this.#detach(this.#session);
      this.#setState('stopped', { exitCode });
    }
    return exitCode;
  }

  #launch(attempt) {
    this.#setState('starting', { attempt });
    if (this.#state !== 'starting') return;
    const starting = (this.#starting = Promise.resolve().then(() => this.#start()));
    starting.then(
      (client) => {
        this.#starting = null;
        // If close() came meanwhile it awaits the same promise and closes this client.
        if (this.#state === 'starting') this.#attach(client, attempt);
      },
      (error) => {
        this.#starting = null;
        if (this.#state !== 'starting') return;
        // A host that never once came up is a setup problem (wrong command, import error): no retry.
        if (attempt === 0) return this.#fail(error);
        this.#setState('crashed', crashDetails(error, 'start', null));
        if (this.#state === 'crashed') this.#restartOrFail(error);
      },
    );
  }

  #attach(client, attempt) {
    const ready = client.ready ?? {};
    const session = {
      client,
      ready,
      idempotent: new Set(Array.isArray(ready.idempotent) ? ready.idempotent : []),
      crash: null,
      unhealthy: false,
      healthFailures: 0,
      forwards: { on: new Map(), onProgress: new Map() },
    };
    this.#session = session;
    session.offClose = client.onClose((error) => this.#hostClosed(session, error));
    for (const kind of ['on', 'onProgress']) {
      for (const key of this.#subscriptions[kind].keys()) this.#forward(session, kind, key);
    }
    if (attempt === 0) return this.#open(session, null);
    // A restart: the kept subscriptions are made again (still 'starting', so new calls queue).
    session.recovering = true;
    const kept = [...this.#kept];
    Promise.all(kept.map((entry) => this.#replay(session, entry))).then((subscriptions) => {
      if (this.#session !== session || this.#state !== 'starting') return;
      session.recovering = false;
      this.#open(session, { attempt, subscriptions });
    });
  }

  /** The host is ready: send the queue, then tell 'ready' listeners, waiters and (after a restart) 'recovered' ones. */
  #open(session, recovered) {
    const { ready } = session;
    // Queued calls go first, before anything a 'ready' listener sends.
    this.#state = 'ready';
    const queue = this.#queue;
    this.#queue = [];
    this.#queued = 0;
    for (const entry of queue) {
      if (!entry.settled) this.#send(entry);
    }
    this.#setState('ready', { info: ready });
    if (this.#state !== 'ready') return;
    for (const waiter of this.#readyWaiters.splice(0)) waiter.resolve(ready);
    this.#scheduleHealth(session);
    if (recovered) this.#tell(this.#recoveredListeners, recovered);
  }

  /** Make a kept subscription again on a new host; a failure is reported, and it is tried again after the next restart. */
  #replay(session, kept) {
    const { method, params } = kept;
    const timeout = this.#defaultTimeout ?? this.#health.timeout;
    return session.client.call(method, params, { caller: kept.caller, timeout, retry: false }).then(
      (result) => {
        if (!this.#kept.has(kept)) {
          // Closed while this replay was on its way: end what it opened.
          const [closeMethod, closeParams] = kept.close?.(result) ?? [];
          if (closeMethod !== undefined) session.client.call(closeMethod, closeParams, { caller: kept.caller }).catch(() => {});
          return { method, params, result };
        }
        kept.result = result;
        this.#advance(kept, result);
        if (kept.onResult) {
          try {
            kept.onResult(result, { recovered: true });
          } catch (error) {
            this.#report(error);
          }
        }
        return { method, params, result };
      },
      (error) => {
        if (this.#session === session) this.#report(error);
        return { method, params, error };
      },
    );
  }

  /** A reply or notification of a kept subscription: `resume` may bring its params up to date. */
  #advance(kept, value) {
    if (!kept.resume) return;
    try {
      const next = kept.resume(kept.params, value);
      if (next !== undefined) {
        checkParams(next);
        kept.params = next;
      }
    } catch (error) {
      this.#report(error);
    }
  }

  /** Stop keeping a subscription; resolves with the host's answer to its `close` call (true if none). */
  async #unkeep(kept) {
    if (!this.#kept.delete(kept)) return false;
    for (const off of kept.offs) off();
    const [method, params] = kept.close?.(kept.result) ?? [];
    if (method === undefined || this.closed) return true;
    return this.call(method, params, { caller: kept.caller });
  }

  #detach(session) {
    if (this.#session === session) this.#session = null;
    clearTimeout(this.#healthTimer);
    session.offClose?.();
    for (const forwards of Object.values(session.forwards)) {
      for (const off of forwards.values()) off();
      forwards.clear();
    }
  }

  /** The host's connection closed: a crash unless close() asked for it. */
  #hostClosed(session, error) {
    if (this.#session !== session || !(this.#state === 'ready' || (session.recovering && this.#state === 'starting'))) return;
    session.crash = error;
    this.#detach(session);
    this.#setState('crashed', crashDetails(error, session.unhealthy ? 'unresponsive' : 'exited', session.client));
    if (this.#state === 'crashed') this.#restartOrFail(error, session.unhealthy);
  }

  #restartOrFail(crash, unresponsive = false) {
    const { policy, window, maxRestarts } = this.#restart;
    const what = describeCrash(crash, unresponsive);
    if (policy === 'never') {
      return this.#fail(new ConnectionClosedError(`${what}, and restarts are off`, { cause: crash }));
    }
    const now = Date.now();
    this.#restarts = this.#restarts.filter((time) => now - time < window);
    if (this.#restarts.length >= maxRestarts) {
      const message = `${what}; gave up after ${maxRestarts} restart(s) within ${window} ms`;
      return this.#fail(new ConnectionClosedError(message, { cause: crash }));
    }
    this.#restarts.push(now);
    const attempt = this.#restarts.length;
    const delay = restartDelay(this.#restart, attempt);
    this.#setState('restarting', { attempt, delay });
    if (this.#state !== 'restarting') return;
    this.#restartTimer = setTimeout(() => this.#launch(attempt), delay);
  }

  #fail(error) {
    this.#failure = error;
    this.#setState('failed', { error });
    this.#rejectWaiting(error);
  }

  /** Reject queued calls, calls waiting to retry and whenReady() waiters; queued notifications are dropped. */
  #rejectWaiting(error) {
    const queue = this.#queue;
    this.#queue = [];
    this.#queued = 0;
    for (const entry of queue) {
      if (!entry.settled && !entry.notification) this.#settle(entry, error);
    }
    for (const entry of [...this.#sleeping]) this.#abandon(entry, error);
    for (const waiter of this.#readyWaiters.splice(0)) waiter.reject(error);
  }

  #enqueue(entry) {
    entry.queued = true;
    this.#queue.push(entry);
    this.#queued++;
  }

  #send(entry) {
    entry.queued = false;
    const session = this.#session;
    if (entry.notification) {
      try {
        session.client.notify(entry.method, entry.params, { caller: entry.caller });
      } catch (error) {
        this.#report(error);
      }
      return;
    }
    // A signal of our own, so one abort path serves the caller's signal and the end-to-end timeout.
    entry.controller = entry.signal || entry.timer ? new AbortController() : undefined;
    entry.attempts++;
    // retry: false, as the supervisor decides what is retried, on this host or the next.
    const options = { signal: entry.controller?.signal, timeout: null, onProgress: entry.onProgress, caller: entry.caller, retry: false };
    if (entry.meta) options.meta = true;
    session.client
      .call(entry.method, entry.params, options)
      .then(
        (result) => this.#settle(entry, undefined, result),
        (error) => this.#sendFailed(entry, session, error),
      );
  }

  #sendFailed(entry, session, error) {
    if (entry.settled) return;
    if (!(error instanceof ConnectionClosedError)) {
      if (!this.#retryLater(entry, session, error)) this.#settle(entry, error);
      return;
    }
    if (!session.crash) {
      // The pipe broke before the process's end was reported: decide once it is (a crash or our close).
      if (this.#session === session && this.#state === 'ready') {
        session.client.onClose(() => this.#sendFailed(entry, session, error));
        return;
      }
      return this.#settle(entry, error);
    }
    const idempotent = entry.idempotent ?? session.idempotent.has(entry.method);
    if (this.#state === 'stopping' || this.#state === 'stopped') {
      return this.#settle(entry, this.#closedError(`send ${entry.method}`));
    }
    const reason = !idempotent
      ? `${entry.method} is not idempotent`
      : this.#state === 'failed'
        ? `the host could not be restarted (${this.#failure?.message})`
        : entry.retry === false
          ? 'retry is off for this call'
          : entry.retry && entry.attempts >= entry.retry.attempts
            ? `it was tried ${entry.attempts} time(s) (retry.attempts)`
            : null;
    if (reason === null) {
      if (this.#state === 'ready') this.#send(entry);
      else this.#enqueue(entry);
      return;
    }
    const unresponsive = session.unhealthy;
    this.#settle(entry, new SidecarCrashedError(entry.method, session.crash, { idempotent, unresponsive, reason }));
  }

  /**
   * The host answered with an error: if the call has a retry policy, is idempotent and the error
   * is a refusal worth another try, wait the policy's delay and send it again (to whichever host
   * is ready then). False if it is not retried; a wait past the call's timeout is not taken.
   */
  #retryLater(entry, session, error) {
    const policy = entry.retry;
    if (!policy || !(entry.idempotent ?? session.idempotent.has(entry.method))) return false;
    const wait = retryWait(policy, entry.attempts, error);
    if (wait === undefined || (entry.deadline !== undefined && Date.now() + wait >= entry.deadline)) return false;
    const waking = (entry.waking = new AbortController());
    this.#sleeping.add(entry);
    pause(policy, wait, waking.signal).then(
      () => {
        this.#sleeping.delete(entry);
        if (entry.settled) return;
        entry.waking = undefined;
        if (this.closed) this.#settle(entry, this.#closedError(`send ${entry.method}`));
        else if (this.#state === 'ready') this.#send(entry);
        else this.#enqueue(entry);
      },
      (sleepError) => {
        this.#sleeping.delete(entry);
        this.#settle(entry, sleepError);
      },
    );
    return true;
  }

  /** The caller's signal or the timeout fired: drop the entry from the queue or its retry wait, or cancel it on the host. */
  #abandon(entry, error) {
    if (entry.settled) return;
    this.#settle(entry, error);
    this.#sleeping.delete(entry);
    entry.waking?.abort(error);
    entry.controller?.abort(error);
  }

  #settle(entry, error, result) {
    if (entry.settled) return;
    if (entry.queued) this.#queued--;
    entry.settled = true;
    entry.queued = false;
    clearTimeout(entry.timer);
    entry.signal?.removeEventListener('abort', entry.onAbort);
    if (error) entry.reject(error);
    else entry.resolve(result);
  }

  #scheduleHealth(session) {
    const { interval } = this.#health;
    if (!interval) return;
    this.#healthTimer = setTimeout(() => this.#ping(session), interval);
  }

  /** Any answer, even an error (a method the host lacks answers -32601), shows the host is alive. */
  #ping(session) {
    if (this.#session !== session || this.#state !== 'ready') return;
    const { method, timeout, failures } = this.#health;
    const alive = () => {
      if (this.#session !== session || this.#state !== 'ready') return;
      session.healthFailures = 0;
      this.#scheduleHealth(session);
    };
    session.client.call(method, undefined, { timeout }).then(alive, (error) => {
      if (error instanceof RpcError) return alive();
      if (!(error instanceof CallTimeoutError) || this.#session !== session || this.#state !== 'ready') return;
      if (++session.healthFailures < failures) return this.#scheduleHealth(session);
      // A hung host: kill it and let the close handler treat it as a crash.
      session.unhealthy = true;
      try {
        if (typeof session.client.kill === 'function') session.client.kill();
        else session.client.close();
      } catch (killError) {
        this.#report(killError);
      }
    });
  }

  #subscribe(kind, key, handler) {
    if (typeof handler !== 'function') throw new TypeError('handler must be a function');
    const map = this.#subscriptions[kind];
    let handlers = map.get(key);
    if (!handlers) {
      map.set(key, (handlers = new Set()));
      if (this.#session) this.#forward(this.#session, kind, key);
    }
    // Wrapped so subscribing the same function twice gives two independent subscriptions.
    const entry = (...args) => handler(...args);
    handlers.add(entry);
    return () => {
      if (!handlers.delete(entry) || handlers.size > 0 || map.get(key) !== handlers) return;
      map.delete(key);
      const forwards = this.#session?.forwards[kind];
      forwards?.get(key)?.();
      forwards?.delete(key);
    };
  }

  /** Subscribe once per key on the session's client and fan out to the supervisor's handlers. */
  #forward(session, kind, key) {
    const off = session.client[kind](key, (...args) => {
      for (const handler of [...(this.#subscriptions[kind].get(key) ?? [])]) {
        try {
          handler(...args);
        } catch (error) {
          this.#report(error);
        }
      }
    });
    session.forwards[kind].set(key, off);
  }

  #setState(state, details) {
    this.#state = state;
    this.#tell(this.#stateListeners, { state, ...details });
  }

  #tell(listeners, event) {
    for (const listener of [...listeners]) {
      try {
        listener(event);
      } catch (error) {
        this.#report(error);
      }
    }
  }

  #closedError(what) {
    if (this.#state === 'failed') return this.#failure;
    return new ConnectionClosedError(`cannot ${what}: the bridge host supervisor is closed`);
  }

  #report(error) {
    try {
      this.#onError(error);
    } catch {
      // A reporter that throws must not break supervision.
    }
  }
}

/** What Supervisor.subscribe() resolves with: the kept subscription, current across restarts. */
class KeptSubscription {
  #kept;
  #close;

  constructor(kept, close) {
    this.#kept = kept;
    this.#close = close;
  }

  get method() {
    return this.#kept.method;
  }

  /** The params it will be made with on the next host. */
  get params() {
    return this.#kept.params;
  }

  /** The latest host's reply (a new subscription id after each restart). */
  get result() {
    return this.#kept.result;
  }

  /** Stop making it again and end it on the host (its `close` call); false if already closed. */
  close() {
    return this.#close();
  }
}

/** Supervisor.stream()'s iterator: the host's CallStream once one is ready, crash errors mapped. */
class SupervisedStream {
  progress = undefined;
  #opening;
  #mapError;
  #cancel;
  #finished = false;

  constructor(opening, mapError, cancel) {
    this.#opening = opening;
    this.#mapError = mapError;
    this.#cancel = cancel;
    this.result = opening.then(
      ({ inner, session }) => inner.result.catch((error) => Promise.reject(mapError(session, error))),
      (error) => Promise.reject(error),
    );
    this.result.catch(() => {});
    opening.catch(() => {});
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  async next() {
    if (this.#finished) return { done: true, value: undefined };
    const { inner, session } = await this.#opening.catch((error) => {
      this.#finished = true;
      throw error;
    });
    try {
      const step = await inner.next();
      this.progress = inner.progress;
      return step;
    } catch (error) {
      throw this.#mapError(session, error);
    }
  }

  async return(value) {
    if (!this.#finished) {
      this.#finished = true;
      await this.#cancel()?.return();
    }
    return { done: true, value };
  }
}

/** Resolve as `promise` does, or reject with CallCancelledError once `signal` aborts. */
function untilAborted(promise, signal, method) {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(new CallCancelledError(method, signal.reason));
  let onAbort;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      onAbort = () => reject(new CallCancelledError(method, signal.reason));
      signal.addEventListener('abort', onAbort, { once: true });
    }),
  ]).finally(() => signal.removeEventListener('abort', onAbort));
}

function crashDetails(error, reason, client) {
  return {
    reason,
    exitCode: error?.exitCode ?? error?.cause?.exitCode ?? null,
    signal: error?.signal ?? error?.cause?.signal ?? null,
    stderr: client?.stderrTail ?? [],
    error,
  };
}

function describeCrash(crash, unresponsive = false) {
  const signal = crash?.signal;
  const code = crash?.exitCode;
  const why = unresponsive ? ' after it stopped answering health checks' : '';
  if (signal) return `the bridge host was killed by ${signal}${why}`;
  if (code !== undefined && code !== null) return `the bridge host exited with code ${code}${why}`;
  return `the bridge host connection closed${why}`;
}

function normalizeRestart(restart = {}) {
  if (typeof restart === 'string') restart = { policy: restart };
  if (restart === null || typeof restart !== 'object') {
    throw new TypeError(`restart must be one of ${POLICIES.join(', ')} or an options object`);
  }
  const options = { ...RESTART_DEFAULTS };
  for (const [key, value] of Object.entries(restart)) {
    if (value !== undefined) options[key] = value;
  }
  if (!POLICIES.includes(options.policy)) throw new TypeError(`restart.policy must be one of ${POLICIES.join(', ')}`);
  for (const key of ['delay', 'maxDelay', 'maxRestarts', 'window']) {
    if (typeof options[key] !== 'number' || !(options[key] >= 0)) {
      throw new TypeError(`restart.${key} must be a non-negative number`);
    }
  }
  if (options.delay > MAX_TIMEOUT) throw new TypeError(`restart.delay must be at most ${MAX_TIMEOUT} ms`);
  options.maxDelay = Math.min(options.maxDelay, MAX_TIMEOUT);
  return options;
}

function normalizeHealth(health = {}) {
  if (health === false || health === null) return { ...HEALTH_DEFAULTS, interval: 0 };
  if (typeof health !== 'object') throw new TypeError('health must be an options object or false');
  const options = { ...HEALTH_DEFAULTS };
  for (const [key, value] of Object.entries(health)) {
    if (value !== undefined) options[key] = value;
  }
  checkMethod(options.method);
  for (const [key, min] of [
    ['interval', 0],
    ['timeout', 1],
  ]) {
    if (typeof options[key] !== 'number' || !(options[key] >= min) || options[key] > MAX_TIMEOUT) {
      throw new TypeError(`health.${key} must be a number of milliseconds from ${min} to ${MAX_TIMEOUT}`);
    }
  }
  if (!(Number.isInteger(options.failures) && options.failures >= 1)) {
    throw new TypeError('health.failures must be a positive integer');
  }
  return options;
}
