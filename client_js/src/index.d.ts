// Types for "@bridge-rpc/client": the transport-free JSON-RPC 2.0 client and its Supervisor.

/** Undoes a subscription. Calling it more than once is harmless. */
export type Unsubscribe = () => void;

/** JSON-RPC params: by name (object) or by position (array). */
export type Params = Record<string, unknown> | unknown[];

export interface RequestMessage {
  jsonrpc: '2.0';
  id: number | string;
  method: string;
  params?: Params;
  /** The identity the host takes the call for; overrides any `$meta.caller` in params. */
  $caller?: unknown;
}

export interface NotificationMessage {
  jsonrpc: '2.0';
  method: string;
  params?: Params;
  $caller?: unknown;
}

export interface ErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

export interface ResponseMessage {
  jsonrpc: '2.0';
  id: number | string | null;
  result?: unknown;
  error?: ErrorObject;
}

export type Message = RequestMessage | NotificationMessage | ResponseMessage;

/**
 * What RpcClient needs from a transport: move whole, already-parsed messages.
 * Framing, processes and sockets are the transport's business.
 */
export interface Transport {
  /** Write one message. May throw once the transport is closed. */
  send(message: Message): void;
  /** Deliver each incoming message: an object, or an array for a batch reply. */
  onMessage(listener: (message: unknown) => void): Unsubscribe;
  /** Called once when the connection is gone, with an Error saying why if known. */
  onClose(listener: (error?: Error) => void): Unsubscribe;
  /** Begin closing; RpcClient.close() resolves with what this returns (or resolves to). */
  close(): unknown;
}

export interface ClientOptions {
  /** Default per-call timeout in ms; none if omitted. */
  timeout?: number;
  /** Sees every message sent and received, for logging and debugging. */
  trace?: (direction: 'send' | 'receive', message: unknown) => void;
  /** Errors that belong to no call: a throwing handler, a malformed message. Default: console.error. */
  onError?: (error: Error) => void;
}

/**
 * `caller`: the identity the host takes a call for, sent as the request's top-level `$caller`
 * whatever the params' shape, and overriding any `$meta.caller` in them. The host maps it to a
 * participant id as it does `$meta.caller` (a string or integer as it is, `{participant}`,
 * `{window}` -> `window:<id>`, `{id}`). The host trusts whoever writes its stdin, so only a
 * trusted transport (Electron's main process forwarding for a window) should set it.
 */
export interface CallerOption {
  caller?: unknown;
}

export interface CallOptions extends CallerOption {
  /** Aborting sends `$/cancelRequest` and rejects the call with CallCancelledError. */
  signal?: AbortSignal;
  /**
   * Milliseconds before the call sends `$/cancelRequest` and rejects with CallTimeoutError.
   * Defaults to the client's `timeout`; null means none even if the client has one.
   */
  timeout?: number | null;
  /** Receives the `value` of each `$/progress` whose token is this call's id. */
  onProgress?: (value: any) => void;
}

export interface StreamOptions extends CallerOption {
  /** Aborting sends `$/cancelRequest` (the host closes the generator); the iterator throws CallCancelledError. */
  signal?: AbortSignal;
  /** Milliseconds for the whole stream; then `$/cancelRequest` and CallTimeoutError. Defaults to the client's `timeout`. */
  timeout?: number | null;
  /**
   * Chunks the host may send ahead of the consumer (`$meta.stream.window`); one more is granted
   * (`$/stream/credit`) per chunk taken. Default 16. Ignored for positional params, which cannot
   * carry `$meta`: such streams are not paced.
   */
  window?: number;
  /** Called as each chunk is handed to the consumer. */
  onProgress?: (progress: StreamProgress) => void;
}

/** Where a stream is: of the chunk last handed to the consumer. */
export interface StreamProgress {
  /** The chunk's number, from 0. */
  seq: number;
  /** Items sent so far, this chunk's included. */
  done: number;
  /** Present when the handler set `ctx.total`. */
  total?: number;
}

/** The reply that closes a stream. */
export interface StreamResult {
  items: number;
  chunks: number;
}

/**
 * A streaming call: `for await (const items of stream)` gets each chunk's items in order.
 * `break` (or `return()`) cancels the call on the host. The iterator's return value, and
 * `result`, is the closing reply; the host's error is thrown after the chunks sent before it.
 */
export interface CallStream<T = any> extends AsyncIterableIterator<T[]> {
  /** Of the chunk last handed out; undefined before the first. */
  readonly progress: StreamProgress | undefined;
  /** Resolves with the closing reply; rejects with the error that ended the stream (CallCancelledError after `break`). */
  readonly result: Promise<StreamResult>;
  next(): Promise<IteratorResult<T[], StreamResult | undefined>>;
  return(value?: any): Promise<IteratorResult<T[], any>>;
}

/** The progress value bridge's built-in handlers (e.g. `demo.count`) report. */
export interface StepProgress {
  done: number;
  total: number;
}

/**
 * What an app calls a host through: an RpcClient, or a Supervisor in front of hosts that restart
 * (see its doc for what it adds). `O` is the options `call()` takes.
 */
export interface Caller<O extends CallOptions = CallOptions> {
  /** Send a request; resolves with its result. */
  call<R = any>(method: string, params?: Params, options?: O): Promise<R>;
  /**
   * Call a streaming method (a generator handler). Named params get `$meta.stream.window`
   * (merged into any `$meta` given). Throws TypeError at once for bad arguments.
   */
  stream<T = any>(method: string, params?: Params, options?: StreamOptions): CallStream<T>;
  /** Send a notification (no reply); `caller` as for call(). Throws ConnectionClosedError once closed. */
  notify(method: string, params?: Params, options?: CallerOption): void;
  /** Handle the host's notifications named `method`. */
  on<P = any>(method: string, handler: (params: P, method: string) => void): Unsubscribe;
  /** Handle `$/progress` values for a token (a call id, or a token sent in `$meta.progressToken`). */
  onProgress<V = any>(token: number | string, handler: (value: V) => void): Unsubscribe;
}

export interface RpcClient extends Caller {}
export declare class RpcClient {
  constructor(transport: Transport, options?: ClientOptions);
  /** True once close() was called or the transport closed. */
  readonly closed: boolean;
  /** Called once when the connection closes, with the error pending calls rejected with. */
  onClose(listener: (error: ConnectionClosedError) => void): Unsubscribe;
  /** Stop sending and close the transport. In-flight calls may still complete. */
  close(): Promise<unknown>;
}

export declare const ErrorCodes: Readonly<{
  ParseError: -32700;
  InvalidRequest: -32600;
  MethodNotFound: -32601;
  InvalidParams: -32602;
  InternalError: -32603;
  RequestTimeout: -32001;
  MessageTooLarge: -32002;
  RateLimited: -32003;
  CircuitOpen: -32004;
  ServerBusy: -32005;
  RequestCancelled: -32800;
  ServerCancelled: -32802;
}>;

/** The host answered with a JSON-RPC error object. */
export declare class RpcError extends Error {
  constructor(code: number, message: string, data?: unknown);
  readonly name: 'RpcError';
  readonly code: number;
  /** For -32602 Invalid params: `{ errors: [{ loc, msg, type }] }`. */
  readonly data?: any;
  static fromResponse(error: unknown): RpcError;
}

/** The call's AbortSignal fired. `name` is "AbortError"; `cause` is the signal's reason. */
export declare class CallCancelledError extends Error {
  constructor(method: string, reason?: unknown);
  readonly name: 'AbortError';
  readonly method: string;
}

/** The call's timeout passed. `name` is "TimeoutError". */
export declare class CallTimeoutError extends Error {
  constructor(method: string, timeout: number);
  readonly name: 'TimeoutError';
  readonly method: string;
  readonly timeout: number;
}

/** The connection closed before the call got its response. */
export declare class ConnectionClosedError extends Error {
  constructor(message?: string, options?: { cause?: unknown });
  readonly name: 'ConnectionClosedError';
  /** Set by the Node and Tauri transports: the host's exit code (null if killed by a signal). */
  exitCode?: number | null;
  /** The signal that ended the host, if any: its name from the Node transport, its number from Tauri's. */
  signal?: string | number | null;
}

/** The params of the host's `$/ready` notification, which every transport waits for. */
export interface ReadyInfo {
  /** The app's name ("bridge-builtins" when serving the built-in handlers). */
  name?: string;
  /** The bridge host's version. */
  version: string;
  appVersion?: string;
  pid: number;
  framing: string;
  capabilities: {
    batch?: boolean;
    cancel?: string;
    progress?: string;
    discover?: string;
    [key: string]: unknown;
  };
  limits?: {
    maxMessageBytes?: number; maxInflight?: number; maxBatch?: number;
    maxInflightPerCaller?: number; maxQueued?: number; maxQueuedBytes?: number; [key: string]: unknown;
  };
  /** Names of the methods declared idempotent (safe to retry). */
  idempotent?: string[];
  [key: string]: unknown;
}

export { participantOf } from './identity.js';
export * from './state.js';
export * from './supervisor.js';
