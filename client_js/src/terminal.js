// attachTerminal(): one of the host's `terminal` plugin terminals shown in an xterm.js Terminal.
// Keystrokes go out batched as `terminal.write`; output comes from the `terminal.attach` stream
// and each chunk's credit goes back only once xterm has parsed it (xterm.js's flow-control
// recipe), so a fast program waits for the screen instead of filling memory. No xterm import:
// the caller hands in its Terminal (`@xterm/xterm` in a page, `@xterm/headless` in Node).

/** Host errors that mean the terminal is gone: input for it is dropped quietly. */
const GONE = new Set([4702, 4703]);

/** A binary string (what xterm's onBinary gives: one char per byte) as base64. */
function binaryToBase64(text) {
  return btoa(text);
}

/** Base64 as bytes, for xterm's write(). */
function base64ToBytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function checkOptions(client, term, options) {
  for (const name of ['call', 'stream']) {
    if (typeof client?.[name] !== 'function') throw new TypeError(`client must have a ${name}() method (an RpcClient, Supervisor or window.bridge)`);
  }
  for (const name of ['write', 'onData', 'onResize']) {
    if (typeof term?.[name] !== 'function') throw new TypeError(`term must be an xterm.js Terminal (no ${name}() method)`);
  }
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object with the terminal id');
  const { id, window = 16, batchMs = 5, onExit, onError, onDropped } = options;
  if (typeof id !== 'string' || id === '') throw new TypeError('id must be the non-empty id terminal.create returned');
  if (!(Number.isSafeInteger(window) && window >= 1)) throw new TypeError('window must be a positive integer');
  if (!(typeof batchMs === 'number' && Number.isFinite(batchMs) && batchMs >= 0)) throw new TypeError('batchMs must be a number >= 0');
  for (const [name, value] of Object.entries({ onExit, onError, onDropped })) {
    if (value !== undefined && typeof value !== 'function') throw new TypeError(`${name} must be a function`);
  }
  return { id, window, batchMs, onExit, onError, onDropped, syncSize: options.syncSize ?? true };
}

/**
 * Show terminal `options.id` in `term` and type into it. Returns `{ closed, dispose }`: `closed`
 * resolves when the output stream ends (the terminal exited, or dispose()) and rejects with what
 * ended it otherwise; dispose() cancels the stream and removes every listener.
 */
export function attachTerminal(client, term, options) {
  const { id, window, batchMs, onExit, onError, onDropped, syncSize } = checkOptions(client, term, options);
  let disposed = false;
  const report = (error) => {
    if (disposed || GONE.has(error?.code)) return;
    if (onError) onError(error);
  };

  // Input: keystrokes gathered for batchMs, then one terminal.write at a time, in order.
  /** What waits to be sent: [{ data } | { binary }] (onData text, onBinary bytes), neighbours of one kind merged. */
  const pending = [];
  let timer = null;
  let writing = false;
  const flush = () => {
    timer = null;
    if (writing || disposed || pending.length === 0) return;
    const segment = pending.shift();
    const params = 'data' in segment ? { id, data: segment.data } : { id, data_base64: binaryToBase64(segment.binary) };
    writing = true;
    client.call('terminal.write', params).then(() => {}, report).finally(() => {
      writing = false;
      flush();
    });
  };
  const queue = (kind, text) => {
    const last = pending[pending.length - 1];
    if (last && kind in last) last[kind] += text;
    else pending.push({ [kind]: text });
    if (timer === null && !writing) timer = setTimeout(flush, batchMs);
  };
  const subscriptions = [term.onData((data) => queue('data', data))];
  if (typeof term.onBinary === 'function') subscriptions.push(term.onBinary((data) => queue('binary', data)));

  // Resize: the latest size, one terminal.resize at a time.
  let wantedSize = null;
  let resizing = false;
  const sendSize = () => {
    if (resizing || disposed || wantedSize === null) return;
    const { rows, cols } = wantedSize;
    wantedSize = null;
    resizing = true;
    client.call('terminal.resize', { id, rows, cols }).then(() => {}, report).finally(() => {
      resizing = false;
      sendSize();
    });
  };
  const resize = (rows, cols) => {
    wantedSize = { rows, cols };
    sendSize();
  };
  subscriptions.push(term.onResize(({ rows, cols }) => resize(rows, cols)));

  // Exit: the `terminal.exited` event, or (attached after it, or the event lost) the list entry.
  let exited = false;
  const exit = (info) => {
    if (exited || disposed) return;
    exited = true;
    if (onExit) onExit({ id, exit_code: info?.exit_code ?? null, signal: info?.signal ?? null });
  };
  const offExited = typeof client.on === 'function' ? client.on('terminal.exited', (params) => {
    if (params?.id === id) exit(params);
  }) : () => {};

  // Output: each chunk's items written, its credit granted in xterm's write callback.
  let stopped;
  const stop = new Promise((resolve) => {
    stopped = resolve;
  });
  const stream = client.stream('terminal.attach', { id }, { window });
  const held = typeof stream.nextHeld === 'function';
  const pump = async () => {
    for (;;) {
      const step = await Promise.race([held ? stream.nextHeld() : stream.next(), stop]);
      if (step === undefined || step.done) return step !== undefined;
      const writes = [];
      for (const item of step.value) {
        if (item?.restore) {
          if (item.restore.data) writes.push(item.restore.data);
          const { rows, cols } = item.restore;
          if (syncSize && term.rows && term.cols && (rows !== term.rows || cols !== term.cols)) resize(term.rows, term.cols);
        } else if (typeof item?.data === 'string') {
          writes.push(item.data);
        } else if (typeof item?.data_base64 === 'string') {
          writes.push(base64ToBytes(item.data_base64));
        } else if (typeof item?.dropped === 'number' && onDropped) {
          onDropped(item.dropped);
        }
      }
      if (writes.length > 0) {
        const last = writes.pop();
        for (const data of writes) term.write(data);
        // xterm parses writes in order: the last one's callback means all of them are on screen.
        await Promise.race([new Promise((resolve) => term.write(last, resolve)), stop]);
      }
      if (disposed) return false;
      step.grant?.();
    }
  };
  const closed = pump().then(async (ended) => {
    if (!ended || disposed || exited) return;
    // The stream ended: the terminal exited. The event may not have come (or come first).
    try {
      const [entry] = await client.call('terminal.list', { ids: [id] });
      exit(entry);
    } catch {
      exit(null);
    }
  }, (error) => {
    if (!disposed) throw error;
  });
  closed.catch(() => {});

  return {
    closed,
    dispose() {
      if (disposed) return;
      disposed = true;
      if (timer !== null) clearTimeout(timer);
      timer = null;
      pending.length = 0;
      for (const subscription of subscriptions) subscription.dispose();
      offExited();
      stopped(undefined);
      stream.return(undefined).catch(() => {});
    },
  };
}
