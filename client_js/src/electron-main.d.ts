// Types for "@bridge-rpc/client/electron/main": serve a client to renderer windows over ipcMain.
// Electron's own types are not needed: the shapes below are the parts of them this uses, so
// Electron's ipcMain and events fit them.

import type { Unsubscribe } from './index.js';

/**
 * What exposeToRenderers needs from a client: an RpcClient, a SidecarClient, or a look-alike,
 * typed by an API map or not (the renderers' calls are checked against `allow` at run time).
 * It must send `options.caller` as the request's `$caller`, or windows pass for the main process.
 */
export interface ExposableClient {
  call(method: any, params?: any, options?: any): Promise<unknown>;
  on(method: any, handler: (params: any, method: any) => void): Unsubscribe;
}

/** The parts of Electron's WebContents used: its id, send(), isDestroyed() and 'destroyed'. */
export interface WebContentsLike {
  readonly id: number;
  send(channel: string, ...args: any[]): void;
  isDestroyed(): boolean;
  once(event: 'destroyed', listener: () => void): unknown;
  removeListener(event: 'destroyed', listener: () => void): unknown;
}

/** The parts of IpcMainInvokeEvent / IpcMainEvent used. */
export interface IpcMainEventLike {
  sender: WebContentsLike;
  /** The frame that sent the message; null once it navigated away or was destroyed. */
  senderFrame?: { readonly url: string } | null;
  frameId?: number;
}

/** The parts of Electron's ipcMain used. */
export interface IpcMainLike {
  handle(channel: string, listener: (event: IpcMainEventLike, ...args: any[]) => unknown): void;
  removeHandler(channel: string): void;
  on(channel: string, listener: (event: IpcMainEventLike, ...args: any[]) => void): unknown;
  removeListener(channel: string, listener: (event: IpcMainEventLike, ...args: any[]) => void): unknown;
}

/** Who made a call, as the host sees it in `$caller` (and middleware in `request.caller`). */
export interface CallerIdentity {
  /** The calling window's webContents id. */
  window: number;
  /** The calling frame's URL (its routing id if the frame is gone). */
  frame: string | number | undefined;
}

export interface ExposeOptions {
  /** Electron's ipcMain. */
  ipcMain: IpcMainLike;
  /**
   * Methods renderers may call: exact names and "prefix.*" patterns ("notes.*" allows
   * "notes.save" and "notes.tags.add", not "notes"). Others get a -32601 RpcError in the
   * renderer and never reach the host.
   */
  allow: string[];
  /** Host notifications renderers may subscribe to, in the same form. Default: none. */
  events?: string[];
  /** Prefix of the IPC channel names; give the preload the same one. Default "bridge". */
  channel?: string;
  /**
   * The identity sent as `$caller` with every call and stream of the window, whatever its params
   * (the host takes it over any `$meta.caller`, and main drops a `$meta` the page sent). It must
   * name a participant (a string, an integer, `{participant}`, `{window}` or `{id}`): otherwise
   * the call is refused in main, since the host would take it for the main process's own.
   * Default: `{ window: event.sender.id, frame: event.senderFrame?.url }` (participant `window:<id>`).
   */
  caller?: (event: IpcMainEventLike) => unknown;
  /**
   * The host method main calls, without a caller, with `{participant}` when a window closes or
   * reloads (unless another window is the same participant), so its collab presence and locks
   * end at once. Windows may never call it, whatever `allow` says. Default `"collab.departed"`;
   * false sends nothing.
   */
  departure?: string | false;
  /** Errors that belong to no call (a window that cannot be sent to). Default: console.error. */
  onError?: (error: unknown) => void;
}

/**
 * Let renderer windows call `client` through ipcMain (the preload side is
 * "@bridge-rpc/client/electron/preload"). Returns a function that removes the handlers,
 * aborts the renderers' calls still running and drops their event subscriptions.
 */
export declare function exposeToRenderers(client: ExposableClient, options: ExposeOptions): () => void;

/** The default `departure` method: `"collab.departed"`. */
export declare const DEPARTURE_METHOD: string;

/** The default `caller`. */
export declare function defaultCaller(event: IpcMainEventLike): CallerIdentity;
