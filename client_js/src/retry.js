// Retry policy for idempotent calls: which errors are worth another try, how long to wait
// (exponential backoff with full jitter, or the host's `data.retry_after`), and how many tries.
// No I/O: RpcClient retries refusals on one connection, the Supervisor also across hosts.

import { MAX_TIMEOUT } from './checks.js';
import { ErrorCodes, RpcError } from './errors.js';

/** The policy's fields when `retry` leaves them out. */
export const RETRY_DEFAULTS = Object.freeze({
  attempts: 3,
  delay: 100,
  maxDelay: 5000,
  random: Math.random,
  sleep: defaultSleep,
});

/** The host refused the call before running it and says to come back: worth another try. */
const RETRY_CODES = new Set([ErrorCodes.RateLimited, ErrorCodes.CircuitOpen, ErrorCodes.ServerBusy]);

/**
 * Exponential backoff with full jitter: uniform in [0, min(maxDelay, delay * 2 ** (attempt - 1)))
 * milliseconds, floored. `attempt` counts from 1. The Supervisor's restart delay uses it too.
 */
export function backoffDelay(delay, maxDelay, attempt, random = Math.random) {
  return Math.floor(random() * Math.min(maxDelay, delay * 2 ** Math.max(0, attempt - 1)));
}

/**
 * A client's `retry` option checked once: `{ base, methods }` or null when there is none.
 * `methods` maps a method name to its own options (over the base) or false (never retried).
 */
export function clientRetry(option, owner) {
  if (option === undefined || option === null || option === false) return null;
  if (typeof option !== 'object') throw new TypeError(`${owner}: retry must be an options object`);
  const { methods, ...base } = option;
  checkRetry(base, 'retry');
  const byMethod = new Map();
  if (methods !== undefined) {
    if (methods === null || typeof methods !== 'object') throw new TypeError('retry.methods must be an object of method names');
    for (const [method, value] of Object.entries(methods)) {
      if (value !== false && value !== true) checkRetry(value, `retry.methods["${method}"]`);
      byMethod.set(method, value === true ? {} : value);
    }
  }
  return { base, methods: byMethod };
}

/**
 * The policy one call retries with: the call's `retry` (options, true or false) over the client's
 * options for the method over the client's own over RETRY_DEFAULTS. Null: nothing says to retry;
 * false: turned off (by the call, or for the method). Throws TypeError for bad call options.
 */
export function retryPolicy(client, method, option) {
  if (option === false) return false;
  if (option === undefined || option === null) {
    if (!client) return null;
    const own = client.methods.get(method);
    return own === false ? false : policyOf(client.base, own);
  }
  if (option !== true) checkRetry(option, 'retry');
  const own = client?.methods.get(method);
  return policyOf(client?.base, own === false ? undefined : own, option === true ? undefined : option);
}

/**
 * Milliseconds to wait before trying again after try number `attempt` failed with `error`, or
 * undefined when not to: the tries are used up, the error is not a refusal to retry (-32003 rate
 * limited, -32004 circuit open, -32005 server busy), or its `data.retry_after` is past `maxDelay`.
 * With `retry_after` the wait is that plus the backoff's jitter, capped at `maxDelay`.
 */
export function retryWait(policy, attempt, error) {
  if (attempt >= policy.attempts || !(error instanceof RpcError) || !RETRY_CODES.has(error.code)) return undefined;
  const jitter = backoffDelay(policy.delay, policy.maxDelay, attempt, policy.random);
  const seconds = error.data?.retry_after;
  if (typeof seconds !== 'number' || !(seconds >= 0) || seconds === Infinity) return jitter;
  const after = Math.ceil(seconds * 1000);
  return after > policy.maxDelay ? undefined : Math.min(policy.maxDelay, after + jitter);
}

/** Wait `ms` with the policy's sleeper; resolves true, or false as soon as `signal` aborts. */
export function pause(policy, ms, signal) {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve(false);
    signal?.addEventListener('abort', onAbort, { once: true });
    const done = () => signal?.removeEventListener('abort', onAbort);
    new Promise((sleep) => sleep(policy.sleep(ms, signal))).then(
      () => (done(), resolve(true)),
      (error) => (done(), signal?.aborted ? resolve(false) : reject(error)),
    );
  });
}

function policyOf(...layers) {
  const policy = { ...RETRY_DEFAULTS };
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer ?? {})) {
      if (value !== undefined) policy[key] = value;
    }
  }
  policy.maxDelay = Math.min(policy.maxDelay, MAX_TIMEOUT);
  return policy;
}

function checkRetry(options, name) {
  if (options === null || typeof options !== 'object') throw new TypeError(`${name} must be an options object, true or false`);
  const { attempts, delay, maxDelay, random, sleep } = options;
  if (attempts !== undefined && !(Number.isSafeInteger(attempts) && attempts >= 1)) {
    throw new TypeError(`${name}.attempts must be a positive integer (tries in all, the first one included)`);
  }
  for (const [key, value] of [
    ['delay', delay],
    ['maxDelay', maxDelay],
  ]) {
    if (value !== undefined && (typeof value !== 'number' || !(value >= 0) || (key === 'delay' && value > MAX_TIMEOUT))) {
      throw new TypeError(`${name}.${key} must be a non-negative number of milliseconds`);
    }
  }
  for (const [key, value] of [
    ['random', random],
    ['sleep', sleep],
  ]) {
    if (value !== undefined && typeof value !== 'function') throw new TypeError(`${name}.${key} must be a function`);
  }
  const unknown = Object.keys(options).filter((key) => !(key in RETRY_DEFAULTS));
  if (unknown.length) throw new TypeError(`${name} has unknown option(s): ${unknown.join(', ')}`);
}

/** setTimeout, cleared when `signal` aborts. */
function defaultSleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
