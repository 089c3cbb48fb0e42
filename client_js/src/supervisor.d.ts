// Types for the Supervisor: one client-like object in front of a bridge host that is
// restarted when it crashes or hangs. Transport-free: exported from "@bridge-rpc/client" (and
// so from every transport's entry point).

import type {
  CallOptions,
  Caller,
  ClientRetryOptions,
  ConnectionClosedError,
  Unsubscribe,
} from './index.js';

/** The `$/ready` params as the Supervisor sees them (ReadyInfo in "@bridge-rpc/client"). */
export interface HostInfo {
  /** Methods the host declares safe to retry. */
  idempotent?: string[];
  [key: string]: any;
}

/**
 * What `Supervisor` needs from each client `start()` makes; a SidecarClient has all of it. Its
 * `call()` is given `retry: false` (the supervisor does the retrying) and `meta: true` when asked.
 */
export interface SupervisedClient<Api = any> extends Omit<Caller<CallOptions, Api>, 'stream'> {
  /** The host's `$/ready` params. */
  readonly ready?: HostInfo;
  /** The host's last stderr lines, reported in the `crashed` event. */
  readonly stderrTail?: string[];
  /** Needed only by Supervisor.stream(). */
  stream?: Caller<CallOptions, Api>['stream'];
  onClose(listener: (error: ConnectionClosedError) => void): Unsubscribe;
  close(): Promise<unknown>;
  /** Stop the host at once (a hung host gets this); close() is used when it is missing. */
  kill?(): unknown;
}

/**
 * `never`: a crash is final (state `failed`). `immediate`: restart at once. `fixed`: after
 * `delay` ms. `backoff`: after a random delay in [0, min(maxDelay, delay * 2 ** (attempt - 1)))
 * (exponential backoff with full jitter).
 */
export type RestartPolicy = 'never' | 'immediate' | 'fixed' | 'backoff';

export interface RestartOptions {
  /** Default `backoff`. */
  policy?: RestartPolicy;
  /** Milliseconds: the fixed delay, or the backoff's base. Default 500. */
  delay?: number;
  /** The backoff's cap in milliseconds. Default 30000. */
  maxDelay?: number;
  /** Restarts allowed within `window` ms; one more crash and the supervisor gives up (`failed`). Default 5. */
  maxRestarts?: number;
  /** Milliseconds over which restarts are counted; the backoff's attempt number is that count. Default 60000. */
  window?: number;
}

export interface HealthOptions {
  /** Milliseconds between a ping's answer and the next ping; 0 turns health checks off. Default 5000. */
  interval?: number;
  /**
   * Milliseconds a ping may take. A ping waits behind the calls the host has not read yet (it
   * reads at most `--max-inflight` at a time), so allow for the longest backlog. Default 5000.
   */
  timeout?: number;
  /** Consecutive timed-out pings that count as a hang: the host is killed and restarted. Default 2. */
  failures?: number;
  /** Any answer counts as alive, an error too (so an app without the method works). Default `rpc.ping`, which every host answers. */
  method?: string;
}

export interface SupervisorOptions<Api = any> {
  /** Start a host and resolve with its client once it is ready (spawnSidecar, or an Electron/Tauri equivalent). */
  start: () => Promise<SupervisedClient<Api>>;
  /** A policy name or options; default `{ policy: 'backoff', delay: 500, maxDelay: 30000, maxRestarts: 5, window: 60000 }`. */
  restart?: RestartPolicy | RestartOptions;
  /** `false` turns health checks off. */
  health?: HealthOptions | false;
  /**
   * Calls and notifications that may wait for a host to (re)start; beyond it new ones fail with
   * QueueFullError. Calls being retried after a crash were accepted already and always wait. Default 1000.
   */
  maxQueued?: number;
  /** Default per-call timeout in ms, counted from call() across queueing and retries; none if omitted. */
  timeout?: number;
  /**
   * Retry idempotent calls the host refused (-32003, -32004, -32005) after a backoff, on whichever
   * host is ready then; `attempts` then also caps the retries after crashes. Without it, refusals
   * are final and crash retries go on while the restart policy restarts. Default: none.
   */
  retry?: ClientRetryOptions;
  /** Errors that belong to no call: a throwing handler or state listener. Default: console.error. */
  onError?: (error: Error) => void;
}

export interface SupervisedCallOptions extends CallOptions {
  /**
   * Whether the call may be sent again: to a new host if the old one died with it in flight, and
   * after a refusal if it has a retry policy. Default: whether the host lists the method in
   * `$/ready`'s `idempotent`. `retry: false` sends it once whatever this says.
   */
  idempotent?: boolean;
}

export type SupervisorState = 'idle' | 'starting' | 'ready' | 'crashed' | 'restarting' | 'stopping' | 'stopped' | 'failed';

export type SupervisorEvent =
  /** `attempt` is 0 for the first start, then the restart's number within the window. */
  | { state: 'starting'; attempt: number }
  | { state: 'ready'; info: HostInfo }
  | {
      state: 'crashed';
      /** `exited`: the process ended; `unresponsive`: killed after failed health pings; `start`: a restart did not come up. */
      reason: 'exited' | 'unresponsive' | 'start';
      exitCode: number | null;
      signal: string | null;
      /** The host's last stderr lines. */
      stderr: string[];
      error: Error;
    }
  | { state: 'restarting'; attempt: number; delay: number }
  | { state: 'stopping' }
  | { state: 'stopped'; exitCode: number | null }
  | { state: 'failed'; error: Error };

/** How Supervisor.subscribe() keeps a host-side subscription across restarts. */
export interface KeepOptions<P = any, R = any> {
  /**
   * The params to make it with next time, from one of its replies or of the notifications named
   * in `events` (undefined: unchanged). `stateSubscription.resume` sets `since_version`.
   */
  resume?: (params: P, value: any) => P | undefined;
  /** Notifications that may bring the params up to date (`state.changed`). */
  events?: string[];
  /** Each reply after a restart (the first reply is what subscribe() resolves with, as `result`). */
  onResult?: (result: R, info: { recovered: true }) => void;
  /** The call that ends it on the host, from its latest reply; none: close() only stops keeping it. */
  close?: (result: R) => [method: string, params?: any] | undefined;
  caller?: unknown;
  /** For the first call only, in milliseconds. */
  timeout?: number | null;
}

/** A subscription Supervisor.subscribe() keeps: made again on every restarted host. */
export interface KeptSubscription<P = any, R = any> {
  readonly method: string;
  /** The params it will be made with next. */
  readonly params: P;
  /** The latest host's reply (after a restart, with that host's subscription id). */
  readonly result: R;
  /** Stop keeping it and send its `close` call; resolves with that call's result, true without one, false if already closed. */
  close(): Promise<unknown>;
}

/** `onRecovered`: a restarted host is ready and every kept subscription was made again on it. */
export interface RecoveredEvent {
  /** The restart's number within the window. */
  attempt: number;
  subscriptions: Array<{ method: string; params: any } & ({ result: any } | { error: Error })>;
}

/**
 * Keeps a bridge host running and presents one client across its restarts. States: idle →
 * starting → ready → crashed → restarting → starting → …; close(): stopping → stopped; a failed
 * first start or too many restarts: failed. What it adds to an RpcClient's calls:
 * - `call()` and `notify()` are queued until a host is ready (QueueFullError past `maxQueued`);
 *   a call in flight when the host dies is retried if idempotent, else rejects with
 *   SidecarCrashedError. With a `retry` policy, refusals of idempotent calls are retried too.
 * - `stream()` waits for a ready host and is never retried: a stream in flight when the host
 *   dies throws SidecarCrashedError after the chunks that came.
 * - `on()` and `onProgress()` subscriptions carry over to every host to come.
 * - `subscribe()` keeps a host-side subscription: after a restart it is made again, from where
 *   the client was, before any queued call; then `onRecovered` listeners are told.
 */
export interface Supervisor<Api = any> extends Caller<SupervisedCallOptions, Api> {}
/** `new Supervisor<Api>(...)` types its calls by an API map (`bridge types`), as RpcClient does. */
export declare class Supervisor<Api = any> {
  constructor(options: SupervisorOptions<Api>);
  readonly state: SupervisorState;
  /** The current host's `$/ready` params; undefined while no host is ready. */
  readonly ready: HostInfo | undefined;
  /** The current host's client (a SidecarClient under Node); undefined while no host is ready. */
  readonly client: SupervisedClient<Api> | undefined;
  /** True once close() was called or the supervisor failed. */
  readonly closed: boolean;
  /** Start the first host (only once); resolves with its ready info, rejects if it cannot start. */
  start(): Promise<HostInfo>;
  /** Resolves when a host is ready (at once if one is); rejects once failed or closed. */
  whenReady(): Promise<HostInfo>;
  /** Called on every state change. */
  onState(listener: (event: SupervisorEvent) => void): Unsubscribe;
  /**
   * Call `method` (one that opens a subscription on the host) and make it again on every
   * restarted host, before queued calls, with params brought up to date by `resume`. Resolves
   * once the first call answered.
   */
  subscribe<P = any, R = any>(method: string, params: P, options?: KeepOptions<P, R>): Promise<KeptSubscription<P, R>>;
  /** Called once a restarted host is ready and the kept subscriptions were made again on it. */
  onRecovered(listener: (event: RecoveredEvent) => void): Unsubscribe;
  /**
   * Stop health checks and restarts, reject queued calls with ConnectionClosedError, close the
   * current host gracefully. Resolves with its exit code (null if none was running or it was killed).
   */
  close(): Promise<number | null>;
}

/**
 * A call was in flight when the host died and was not retried. `name` is "SidecarCrashedError";
 * it is a ConnectionClosedError, so code that handles those keeps working.
 */
export declare class SidecarCrashedError extends ConnectionClosedError {
  constructor(method: string, crash?: Error, options?: { idempotent?: boolean; unresponsive?: boolean; reason?: string });
  // `any`: ConnectionClosedError declares its name as the literal 'ConnectionClosedError'.
  readonly name: any;
  readonly method: string;
  exitCode: number | null;
  signal: string | null;
  /** True if the call was safe to retry but no host came back to retry it on. */
  readonly idempotent: boolean;
}

/** A call or notification made while the host (re)starts, with `maxQueued` already waiting. */
export declare class QueueFullError extends Error {
  constructor(method: string, limit: number);
  readonly name: 'QueueFullError';
  readonly method: string;
  readonly limit: number;
}

/** Milliseconds before restart number `attempt` (1-based, counted within the window). `random` returns [0, 1). */
export declare function restartDelay(
  restart: RestartPolicy | RestartOptions | undefined,
  attempt: number,
  random?: () => number,
): number;

export declare const RESTART_DEFAULTS: Readonly<Required<RestartOptions>>;
export declare const HEALTH_DEFAULTS: Readonly<Required<HealthOptions>>;
