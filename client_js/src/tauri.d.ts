// Types for "@bridge-rpc/client/tauri": run the bridge host as a Tauri sidecar through
// @tauri-apps/plugin-shell. The plugin's types are not needed: its Command class fits
// ShellCommandClass.

import { RpcClient, type HostProcessOptions, type HostProcessState } from './index.js';

export * from './index.js';

/** The parts of the plugin's Child used. */
export interface ShellChild {
  readonly pid: number;
  write(data: string | Uint8Array | number[]): Promise<void>;
  kill(): Promise<void>;
}

/** The parts of the plugin's Command used. */
export interface ShellCommand {
  readonly stdout: { on(event: 'data', listener: (payload: any) => void): unknown };
  readonly stderr: { on(event: 'data', listener: (payload: any) => void): unknown };
  on(event: 'close', listener: (payload: { code: number | null; signal: number | null }) => void): unknown;
  on(event: 'error', listener: (message: string) => void): unknown;
  spawn(): Promise<ShellChild>;
}

/** The plugin's Command class, as imported from '@tauri-apps/plugin-shell'. */
export interface ShellCommandClass {
  sidecar(program: string, args?: string | string[], options?: any): ShellCommand;
}

export interface TauriSidecarOptions extends HostProcessOptions {
  /** `Command` from '@tauri-apps/plugin-shell'. */
  Command: ShellCommandClass;
  /**
   * The sidecar as listed in tauri.conf.json > bundle > externalBin, or the file `bridge bundle`
   * built (its target triple is dropped: see sidecarName). Default "binaries/bridge-host".
   */
  program?: string;
  /** Arguments; a capability must allow exactly these (shell:allow-spawn). */
  args?: string[];
  /** Added to the inherited environment. BRIDGE_FRAMING is set to "ndjson" unless given. */
  env?: Record<string, string>;
  cwd?: string;
  /** The plugin's output encoding: default UTF-8 lines, or "raw" for byte chunks. */
  encoding?: string;
  /**
   * Milliseconds close() waits, after sending `$/exit`, for the host to exit before killing it.
   * Default 10000: longer than the host's own shutdown grace (BRIDGE_SHUTDOWN_GRACE, 5 s),
   * after which it answers still-running calls with -32802 and exits 0 by itself.
   */
  closeTimeout?: number;
}

/** An RpcClient bound to a sidecar spawned through the shell plugin; `Api` types its calls (see RpcClient). */
export interface TauriSidecarClient<Api = any> extends HostProcessState {}
export declare class TauriSidecarClient<Api = any> extends RpcClient<Api> {
  /** The plugin's Child. */
  readonly child: ShellChild;
  /**
   * Send the host `$/exit` (the plugin cannot end its stdin): it reads nothing more, finishes
   * in-flight calls, runs its shutdown hooks and exits. Killed if still running after
   * `closeTimeout` ms. Resolves with the exit code, null when it ended by a signal.
   */
  close(): Promise<number | null>;
}

/**
 * The name to give `Command.sidecar()`: the `bundle.externalBin` entry (`binaries/bridge-host`),
 * from that entry itself or from the file `bridge bundle` wrote
 * (`src-tauri/binaries/bridge-host-x86_64-unknown-linux-gnu`): the path from `src-tauri/`,
 * without the target triple or `.exe`. Tauri runs the binary it copied beside the app's executable.
 */
export declare function sidecarName(program: string): string;

/** Spawn the sidecar; resolves once it sent `$/ready`, rejects if refused, exited or silent. */
export declare function createTauriSidecar<Api = any>(options: TauriSidecarOptions): Promise<TauriSidecarClient<Api>>;
