// Types for "@bridge-rpc/client": the transport-free JSON-RPC 2.0 client and its Supervisor.

import type { CallFunction, NotifyFunction, OnFunction, StreamFunction } from './api.js';

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

/** What a reply's trace call is told besides the message. */
export interface TraceDetails {
  /** The method of the request this replies to. */
  method: string;
  /** Milliseconds from sending the request to receiving this reply. */
  durationMs: number;
}

export type TraceFunction = (direction: 'send' | 'receive', message: unknown, details?: TraceDetails) => void;

export interface ConsoleTraceOptions {
  /** Add each message's params, result or error data. Default false. */
  verbose?: boolean;
  /** Where each line goes. Default: console.error. */
  write?: (line: string) => void;
}

/** A `trace` that writes a line per message in vscode-jsonrpc's format, replies with their duration. */
export declare function consoleTrace(options?: ConsoleTraceOptions): TraceFunction;

export interface ClientOptions {
  /** Default per-call timeout in ms; none if omitted. */
  timeout?: number;
  /**
   * Sees every message sent and received, for logging and debugging; for a reply, `details`
   * names its request's method and the milliseconds since it was sent. `consoleTrace()` makes
   * one that prints vscode-jsonrpc-style lines. The Node transport defaults it from
   * BRIDGE_TRACE (1 or "messages": a line per message; "verbose": with params and results; on stderr).
   */
  trace?: TraceFunction;
  /** Errors that belong to no call: a throwing handler, a malformed message. Default: console.error. */
  onError?: (error: Error) => void;
  /**
   * Retry idempotent calls the host refused (-32003 rate limited, -32004 circuit open, -32005
   * server busy) with this policy; `methods` overrides it by method name (`false`: never).
   * A call's own `retry` option wins. Default: no retries.
   */
  retry?: ClientRetryOptions;
}

/**
 * How an idempotent call is tried again: exponential backoff with full jitter (a random wait in
 * [0, min(maxDelay, delay * 2 ** (try - 1))) ms), or the host's `data.retry_after` plus that jitter.
 */
export interface RetryOptions {
  /** Tries in all, the first included. Default 3. */
  attempts?: number;
  /** The backoff's base in ms. Default 100. */
  delay?: number;
  /** The longest wait in ms; a `retry_after` beyond it is not waited for (the call rejects). Default 5000. */
  maxDelay?: number;
  /** The jitter's source, [0, 1). Default Math.random. */
  random?: () => number;
  /** Waits `ms` (resolving early once `signal` aborts). Default setTimeout; tests pass one that returns at once. */
  sleep?: (ms: number, signal?: AbortSignal) => void | Promise<void>;
}

export interface ClientRetryOptions extends RetryOptions {
  /** Per method: its own options over the client's, `true` for the client's, `false` to never retry it. */
  methods?: Record<string, RetryOptions | boolean>;
}

/**
 * What the host says about how it answered, when the call asked (`meta: true`, sent as
 * `$meta.info`). Present on every reply from the handler's path; `rpc.ping` has none.
 */
export interface ReplyMeta {
  /** Milliseconds the host spent on the call: middleware and handler (a cache hit is quick). */
  handlerMs: number;
  /** Present when the method has a Cache: whether the reply came from it. */
  cached?: boolean;
  /**
   * True when the reply was shared with a concurrent identical call (single flight): the handler
   * ran once for the calls that came while it was computing, and this one waited for that run.
   */
  shared?: boolean;
  [key: string]: unknown;
}

/** What `call(..., { meta: true })` resolves with. */
export interface ResultWithMeta<R> {
  result: R;
  /** Undefined when the reply carried none (`rpc.ping`, a host without it). */
  meta: ReplyMeta | undefined;
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
  /**
   * `true` asks the host how it answered (`$meta.info`, merged into the params' `$meta`) and
   * resolves with `{ result, meta }` (the `meta: true` overload of `call()`). Needs params by
   * name, or none: positional params cannot carry `$meta`, so that rejects with a TypeError.
   */
  meta?: false;
  /**
   * Retry this call if the host refuses it (-32003, -32004, -32005) and it is idempotent: options
   * over the client's, `true` for the client's (or the defaults), `false` for none. The call's
   * `timeout` covers every try; a wait that would end past it is not taken.
   */
  retry?: RetryOptions | boolean;
  /** Whether the call is safe to send twice. Default: whether the host lists it in `$/ready`'s `idempotent`. */
  idempotent?: boolean;
}

/** CallOptions with `meta: true`: `call()` then resolves with `{ result, meta }`. */
export type MetaCallOptions<O extends CallOptions = CallOptions> = Omit<O, 'meta'> & { meta: true };

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
  /**
   * Like next(), but the chunk's credit is held until its `grant()` (RpcClient's and
   * SidecarClient's streams; not the Supervisor's or `window.bridge`'s).
   */
  nextHeld?(): Promise<HeldChunk<T> | IteratorReturnResult<StreamResult | undefined>>;
  return(value?: any): Promise<IteratorResult<T[], any>>;
}

/** A chunk from CallStream.nextHeld(): `grant()` lets the host send one more. */
export interface HeldChunk<T = any> extends IteratorYieldResult<T[]> {
  grant(): void;
}

/** The progress value bridge's built-in handlers (e.g. `demo.count`) report. */
export interface StepProgress {
  done: number;
  total: number;
}

/**
 * What an app calls a host through: an RpcClient, or a Supervisor in front of hosts that restart
 * (see its doc for what it adds). `O` is the options `call()` takes. `Api` is the app's API map
 * (`bridge types`), which types each method's params and result, stream items and event params;
 * without it (`any`) the calls are untyped.
 */
export interface Caller<O extends CallOptions = CallOptions, Api = any> {
  /**
   * Send a request; resolves with its result. A streaming method's items are collected from its
   * `$/stream` chunks and resolve the call as one array (use `stream()` to take them as they come).
   * With `meta: true` in the options it resolves with the result and what the host said about it.
   */
  call: CallFunction<Api, O>;
  /**
   * Call a streaming method (a generator handler). Named params get `$meta.stream.window`
   * (merged into any `$meta` given). Throws TypeError at once for bad arguments.
   */
  stream: StreamFunction<Api, StreamOptions>;
  /** Send a notification (no reply); `caller` as for call(). Throws ConnectionClosedError once closed. */
  notify: NotifyFunction<Api, CallerOption>;
  /** Handle the host's notifications named `method` (with an API map: the events the app declares). */
  on: OnFunction<Api>;
  /** Handle `$/progress` values for a token (a call id, or a token sent in `$meta.progressToken`). */
  onProgress<V = any>(token: number | string, handler: (value: V) => void): Unsubscribe;
}

export interface RpcClient<Api = any> extends Caller<CallOptions, Api> {}
/** The transport-free client. `new RpcClient<Api>(transport)` types its calls by an API map (`bridge types`). */
export declare class RpcClient<Api = any> {
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
  /** The reply's `$meta`, when the call asked for it (`meta: true`). */
  meta?: ReplyMeta;
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

/** What every process transport's options share (spawnSidecar, createTauriSidecar). */
export interface HostProcessOptions extends ClientOptions {
  /** Milliseconds to wait for `$/ready` before killing the host and rejecting. Default 10000. */
  readyTimeout?: number;
  /** Each line the host writes to stderr. Default: logged, prefixed "[bridge] ". */
  onStderr?: ((line: string) => void) | null;
}

/** What a client bound to a host process has, whatever the transport. */
export interface HostProcessState {
  /** The `$/ready` params. */
  readonly ready: ReadyInfo;
  /** The last lines the host wrote to stderr (at most 20), oldest first. */
  readonly stderrTail: string[];
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
  /** Whether the host's hot path runs compiled (a `BRIDGE_COMPILE=1` wheel or bundle). */
  compiled?: boolean;
  capabilities: {
    batch?: boolean;
    cancel?: string;
    progress?: string;
    discover?: string;
    /** The notification that ends the host's input as closing stdin would ("$/exit"). */
    exit?: string;
    [key: string]: unknown;
  };
  limits?: {
    maxMessageBytes?: number; maxInflight?: number; maxBatch?: number;
    maxInflightPerCaller?: number; maxQueued?: number; maxQueuedBytes?: number; [key: string]: unknown;
  };
  /** Names of the methods declared idempotent (safe to retry). */
  idempotent?: string[];
  /** The streaming methods: `call()` on one resolves with its items (`[]` when it yields none). */
  streams?: string[];
  [key: string]: unknown;
}

export { participantOf } from './identity.js';
export type * from './api.js';
export * from './state.js';
export * from './supervisor.js';
export * from './terminal.js';
