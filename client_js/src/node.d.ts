// Types for "@bridge-rpc/client/node": spawn a bridge host and talk to it over stdio.

import type { ChildProcess } from 'node:child_process';
import { RpcClient, type HostProcessOptions, type HostProcessState } from './index.js';
import type { ClientRetryOptions, HealthOptions, RestartOptions, RestartPolicy, Supervisor } from './index.js';

export * from './index.js';

export interface SpawnOptions extends HostProcessOptions {
  /** The executable: a Python interpreter, or the sidecar `bridge bundle` built (then `args` are serve flags). */
  command: string;
  /** E.g. `['-m', 'bridge', 'serve', 'myapp:app']`, or `[]` for a bundled sidecar. */
  args?: string[];
  /**
   * Merged over process.env. BRIDGE_FRAMING is set to "ndjson" unless given here (the
   * transport only speaks NDJSON). Leave BRIDGE_READY alone: spawnSidecar waits for `$/ready`.
   */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /**
   * Milliseconds close() waits after ending stdin before SIGTERM (then SIGKILL 2 s later).
   * Default 10000: longer than the host's own shutdown grace (BRIDGE_SHUTDOWN_GRACE, 5 s),
   * after which it answers still-running calls with -32802 and exits 0 by itself.
   */
  closeTimeout?: number;
}

/** An RpcClient bound to a spawned host process; `Api` types its calls (see RpcClient). */
export interface SidecarClient<Api = any> extends HostProcessState {}
export declare class SidecarClient<Api = any> extends RpcClient<Api> {
  readonly process: ChildProcess;
  /** Stop the host at once with `signal` (default SIGKILL); pending calls reject as the process closes. */
  kill(signal?: NodeJS.Signals | number): boolean;
  /**
   * End stdin so the host finishes in-flight work and exits; after `closeTimeout` ms
   * SIGTERM, then SIGKILL. Resolves with the exit code (null if ended by a signal).
   */
  close(): Promise<number | null>;
}

/**
 * Spawn a host; resolves once it sent `$/ready`, rejects if it exits or times out first.
 * `spawnSidecar<Api>(...)` types the client's calls by the app's API map (`bridge types`).
 */
export declare function spawnSidecar<Api = any>(options: SpawnOptions): Promise<SidecarClient<Api>>;

export interface SuperviseOptions extends SpawnOptions {
  /** A policy name or options; default exponential backoff from 500 ms, at most 5 restarts a minute. */
  restart?: RestartPolicy | RestartOptions;
  /** Ping the host every `interval` ms and kill it after `failures` timeouts in a row; `false` turns it off. */
  health?: HealthOptions | false;
  /** Calls that may wait for the host to (re)start. Default 1000. */
  maxQueued?: number;
  /** The Supervisor's retry policy (refusals of idempotent calls, and the cap on crash retries). */
  retry?: ClientRetryOptions;
}

/**
 * A Supervisor over hosts spawned with these options; it starts the first one right away
 * (on the next microtask, so onState() listeners added at once see `starting`). Calls made
 * before the host is ready are queued; `await supervisor.whenReady()` to wait for it.
 */
export declare function superviseSidecar<Api = any>(options: SuperviseOptions): Supervisor<Api>;
