// Error codes and the error classes a call can reject with: the one place they are listed.
// The codes mirror bridge/errors.py on the host.

/** JSON-RPC and LSP error codes bridge uses. Applications use any code outside -32768..-32000. */
export const ErrorCodes = Object.freeze({
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  RequestTimeout: -32001,
  MessageTooLarge: -32002,
  RateLimited: -32003,
  CircuitOpen: -32004,
  ServerBusy: -32005,
  RequestCancelled: -32800,
  ServerCancelled: -32802,
});

/** The host answered with a JSON-RPC error object. */
export class RpcError extends Error {
  constructor(code, message, data) {
    super(message);
    this.name = 'RpcError';
    this.code = code;
    if (data !== undefined) this.data = data;
  }

  /** Build from a response's `error` member, tolerating a malformed one. */
  static fromResponse(error) {
    if (error === null || typeof error !== 'object') {
      return new RpcError(ErrorCodes.InternalError, `malformed error response: ${JSON.stringify(error)}`);
    }
    const code = Number.isInteger(error.code) ? error.code : ErrorCodes.InternalError;
    const message = typeof error.message === 'string' ? error.message : 'Unknown error';
    return new RpcError(code, message, error.data);
  }
}

/** The caller's AbortSignal fired; `$/cancelRequest` was sent and the call gave up. */
export class CallCancelledError extends Error {
  constructor(method, reason) {
    super(`call to ${method} was cancelled`, reason === undefined ? undefined : { cause: reason });
    // "AbortError" is the name fetch() and other web APIs use, so generic checks keep working.
    this.name = 'AbortError';
    this.method = method;
  }
}

/** The call's `timeout` passed; `$/cancelRequest` was sent and the call gave up. */
export class CallTimeoutError extends Error {
  constructor(method, timeout) {
    super(`call to ${method} timed out after ${timeout} ms`);
    this.name = 'TimeoutError';
    this.method = method;
    this.timeout = timeout;
  }
}

/** The connection closed (or was never usable) before the call got its response. */
export class ConnectionClosedError extends Error {
  constructor(message = 'connection closed', options) {
    super(message, options);
    this.name = 'ConnectionClosedError';
  }
}

/** The default `onError`: log an error that belongs to no call, tagged with who saw it. */
export function reportToConsole(tag) {
  return (error) => console.error(`[${tag}]`, error);
}
