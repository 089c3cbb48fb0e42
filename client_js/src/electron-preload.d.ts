// Types for "@bridge-rpc/client/electron/preload": give the page window.bridge, and the type
// of window.bridge itself for the page's code.

import type { CallFunction, OnFunction, StreamFunction, StreamProgress } from './index.js';

/** The parts of Electron's contextBridge used (executeInMainWorld is Electron >= 35). */
export interface ContextBridgeLike {
  executeInMainWorld(executionScript: { func: (...args: any[]) => any; args?: any[] }): any;
}

/** The parts of Electron's ipcRenderer used. */
export interface IpcRendererLike {
  invoke(channel: string, ...args: any[]): Promise<any>;
  send(channel: string, ...args: any[]): void;
  on(channel: string, listener: (event: any, ...args: any[]) => void): unknown;
}

export interface ExposeBridgeOptions {
  contextBridge: ContextBridgeLike;
  ipcRenderer: IpcRendererLike;
  /** The key on `window`. Default "bridge". */
  name?: string;
  /** Prefix of the IPC channel names; the same as given to exposeToRenderers. Default "bridge". */
  channel?: string;
}

/** Put the bridge on the page's `window[name]`. Call it once, at the top of the preload. */
export declare function exposeBridge(options: ExposeBridgeOptions): void;

export interface RendererCallOptions {
  /** Aborting rejects the call at once with CallCancelledError and cancels it on the host. */
  signal?: AbortSignal;
  /** Milliseconds before the call is cancelled and rejects with CallTimeoutError. */
  timeout?: number;
  /** Receives each `$/progress` value of the call. */
  onProgress?: (value: any) => void;
}

export interface RendererStreamOptions {
  /** Aborting throws CallCancelledError at once and cancels the stream on the host. */
  signal?: AbortSignal;
  /** Milliseconds for the whole stream. */
  timeout?: number;
  /** Chunks main may push ahead of the page (1 to 1024); one more per chunk taken. Default 16. */
  window?: number;
  /** Called as each chunk is handed to the page. */
  onProgress?: (progress: StreamProgress) => void;
}

/** The host answered with an error; `code` and `data` survive both hops. */
export interface RendererRpcError extends Error {
  readonly name: 'RpcError';
  readonly code: number;
  readonly data?: any;
}

export interface RendererCallCancelledError extends Error {
  readonly name: 'AbortError';
  readonly method: string;
}

export interface RendererCallTimeoutError extends Error {
  readonly name: 'TimeoutError';
  readonly method: string;
  readonly timeout: number;
}

export interface RendererConnectionClosedError extends Error {
  readonly name: 'ConnectionClosedError';
}

/**
 * `window.bridge` in the page. Its error classes are the page's own (made in the page's
 * world), so test errors with `instanceof window.bridge.RpcError` or by `name`. `Api` types the
 * calls by the app's API map: `bridge types --window bridge` declares `window.bridge` so.
 */
export interface RendererBridge<Api = any> {
  /** Call a method (it must be allowed by exposeToRenderers' `allow`). */
  call: CallFunction<Api, RendererCallOptions>;
  /**
   * Stream a generator method's chunks: `for await (const items of bridge.stream(...))`.
   * `break` cancels it on the host; a slow loop slows the host's generator (credit crosses the hop).
   */
  stream: StreamFunction<Api, RendererStreamOptions>;
  /** Subscribe to a host notification (it must be in exposeToRenderers' `events`). */
  on: OnFunction<Api>;
  readonly RpcError: new (code: number, message: string, data?: unknown) => RendererRpcError;
  readonly CallCancelledError: new (method: string, reason?: unknown) => RendererCallCancelledError;
  readonly CallTimeoutError: new (method: string, timeout: number) => RendererCallTimeoutError;
  readonly ConnectionClosedError: new (message: string) => RendererConnectionClosedError;
}
