// The consumer's side of a streaming call: `$/stream` chunks in, an async iterator out.
// RpcClient.stream() owns the request; this only buffers chunks, hands them out in order,
// grants one credit per chunk taken and ends with the reply.

import { CallCancelledError, CallTimeoutError } from './errors.js';

const NO_LINK = { credit() {}, cancel() {}, report() {} };

/**
 * An async iterable of each chunk's `items`. `progress` is `{ seq, done, total }` of the chunk
 * last handed out; `result` resolves with the reply `{ items, chunks }` (also the iterator's
 * return value) or rejects with what ended the stream.
 */
export class CallStream {
  progress = undefined;
  #method;
  #onProgress;
  #link = NO_LINK;
  /** Chunks received and not yet taken, oldest first. */
  #buffer = [];
  /** next() calls waiting for a chunk or the end: { resolve, reject }. */
  #waiters = [];
  /** The reply once it came: { value } or { error }. */
  #outcome = null;
  /** The consumer has seen the end, returned or broken out: nothing more is handed out. */
  #finished = false;
  #settleResult;

  constructor(method, onProgress) {
    this.#method = method;
    this.#onProgress = onProgress;
    this.result = new Promise((resolve, reject) => {
      this.#settleResult = { resolve, reject };
    });
    // A consumer that only iterates never looks at `result`: its rejection is not unhandled.
    this.result.catch(() => {});
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  /** Resolves with the next chunk's items, or done with the reply; rejects with the stream's error. */
  next() {
    if (this.#finished) return Promise.resolve({ done: true, value: undefined });
    if (this.#buffer.length > 0) return Promise.resolve(this.#take(this.#buffer.shift()));
    if (this.#outcome) return this.#finish();
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /**
   * Like next(), but the chunk's credit is held: the host may send one more chunk only once
   * `grant()` is called (e.g. when the consumer has finished with this one). Calling it more
   * than once, or after the stream ended, does nothing.
   */
  nextHeld() {
    if (this.#finished) return Promise.resolve({ done: true, value: undefined });
    if (this.#buffer.length > 0) return Promise.resolve(this.#take(this.#buffer.shift(), true));
    if (this.#outcome) return this.#finish();
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject, held: true }));
  }

  /** Stop consuming (what `break` does): cancels the call on the host if it is still running. */
  return(value) {
    if (!this.#finished) {
      this.#finished = true;
      this.#buffer = [];
      if (!this.#outcome) this.#link.cancel(new CallCancelledError(this.#method, 'the stream was closed by its consumer'));
      for (const waiter of this.#waiters.splice(0)) waiter.resolve({ done: true, value: undefined });
    }
    return Promise.resolve({ done: true, value });
  }

  /** Internal (RpcClient): `{ credit, cancel, report }`, once the request is made. */
  _bind(link) {
    this.#link = link;
  }

  /** Internal (RpcClient): a `$/stream` notification for this call. */
  _chunk(chunk) {
    if (this.#finished || this.#outcome) return;
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(this.#take(chunk, waiter.held));
    else this.#buffer.push(chunk);
  }

  /** Internal (RpcClient): the reply, or the error that ended the call. */
  _end(value, error) {
    if (this.#outcome) return;
    this.#outcome = error ? { error } : { value };
    if (error) this.#settleResult.reject(error);
    else this.#settleResult.resolve(value);
    // Given up on locally (signal, timeout): what is buffered is not worth handing out.
    if (error instanceof CallCancelledError || error instanceof CallTimeoutError) this.#buffer = [];
    if (this.#buffer.length === 0) {
      for (const waiter of this.#waiters.splice(0)) {
        this.#finish().then(waiter.resolve, waiter.reject);
      }
    }
  }

  /** Internal (RpcClient): the stream could not start. */
  _fail(error) {
    this._end(undefined, error);
    return this;
  }

  #take(chunk, held = false) {
    const items = Array.isArray(chunk.items) ? chunk.items : [];
    this.progress = { seq: chunk.seq, done: chunk.done };
    if (chunk.total !== undefined) this.progress.total = chunk.total;
    let grant;
    if (held) {
      let granted = false;
      grant = () => {
        if (granted || this.#outcome || this.#finished) return;
        granted = true;
        this.#link.credit();
      };
    } else if (!this.#outcome) this.#link.credit();
    if (this.#onProgress) {
      try {
        this.#onProgress(this.progress);
      } catch (error) {
        this.#link.report(error);
      }
    }
    return held ? { done: false, value: items, grant } : { done: false, value: items };
  }

  #finish() {
    this.#finished = true;
    const { value, error } = this.#outcome;
    return error ? Promise.reject(error) : Promise.resolve({ done: true, value });
  }
}
