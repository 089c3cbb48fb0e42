// attachTerminal() against an in-memory host (FakeTransport) and a real headless xterm.js:
// keystrokes batched into terminal.write, credit granted only once xterm has parsed a chunk,
// the restore item first, resize, exit and dispose. terminal-e2e.test.mjs runs a real shell.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import xterm from '@xterm/headless';
import { RpcClient, attachTerminal } from '../src/index.js';
import { FakeTransport } from '../test-support/fake-transport.mjs';

const { Terminal } = xterm;

/** A FakeTransport whose test can wait for a message the client sends. */
class WatchedTransport extends FakeTransport {
  #waiters = [];
  send(message) {
    super.send(message);
    const sent = this.sent[this.sent.length - 1];
    for (const waiter of this.#waiters.splice(0)) {
      if (waiter.predicate(sent)) waiter.resolve(sent);
      else this.#waiters.push(waiter);
    }
  }
  /** The first message sent (already, or from now on) that passes `predicate`. */
  sentWhere(predicate, after = 0) {
    const found = this.sent.slice(after).find(predicate);
    if (found) return Promise.resolve(found);
    return new Promise((resolve) => this.#waiters.push({ predicate, resolve }));
  }
  reply(id, result) {
    this.receive({ jsonrpc: '2.0', id, result });
  }
}

const isCall = (method) => (m) => m.method === method;

/** The screen's text, one string per row, trailing blanks trimmed. */
function screen(term) {
  const buffer = term.buffer.active;
  const lines = [];
  for (let row = 0; row < term.rows; row++) lines.push(buffer.getLine(buffer.viewportY + row)?.translateToString(true) ?? '');
  return lines;
}

/** A headless Terminal whose write callbacks the test releases by hand (`release()`). */
function heldTerminal(options) {
  const term = new Terminal({ allowProposedApi: true, ...options });
  const held = [];
  const parsed = [];
  const write = term.write.bind(term);
  term.write = (data, callback) => write(data, callback && (() => {
    parsed.push(data);
    held.push(callback);
  }));
  return {
    term,
    /** Resolves once xterm parsed a write that had a callback (and holds that callback). */
    parsed: () => new Promise((resolve) => {
      const check = () => (held.length > 0 ? resolve() : setImmediate(check));
      check();
    }),
    release() {
      for (const callback of held.splice(0)) callback();
    },
  };
}

function setup(termOptions = { cols: 80, rows: 24 }, options = {}) {
  const transport = new WatchedTransport();
  const client = new RpcClient(transport);
  const harness = heldTerminal(termOptions);
  const attached = attachTerminal(client, harness.term, { id: 't1', ...options });
  const attach = transport.sent.find(isCall('terminal.attach'));
  return { transport, client, attached, attach, ...harness };
}

describe('attachTerminal on the wire', () => {
  test('streams terminal.attach with the window, and refuses what is not a client, a Terminal or an id', () => {
    const { attach, attached, term } = setup(undefined, { window: 3 });
    assert.deepEqual(attach.params, { id: 't1', $meta: { stream: { window: 3 } } });
    attached.dispose();
    const client = new RpcClient(new FakeTransport());
    assert.throws(() => attachTerminal({}, term, { id: 'x' }), /client must have a call\(\) method/);
    assert.throws(() => attachTerminal(client, {}, { id: 'x' }), /term must be an xterm.js Terminal/);
    assert.throws(() => attachTerminal(client, term, {}), /id must be the non-empty id/);
    assert.throws(() => attachTerminal(client, term, { id: 'x', window: 0 }), /window must be a positive integer/);
    assert.throws(() => attachTerminal(client, term, { id: 'x', batchMs: -1 }), /batchMs/);
    assert.throws(() => attachTerminal(client, term, { id: 'x', onExit: 1 }), /onExit must be a function/);
  });

  test('keystrokes are batched into one terminal.write, one at a time, in order', async (t) => {
    const { transport, term, attached } = setup(undefined, { batchMs: 20 });
    t.mock.timers.enable({ apis: ['setTimeout'] });
    term.input('ec');
    term.input('ho');
    t.mock.timers.tick(19);
    assert.equal(transport.sent.filter(isCall('terminal.write')).length, 0, 'nothing before the batch time');
    t.mock.timers.tick(1);
    const first = await transport.sentWhere(isCall('terminal.write'));
    assert.deepEqual(first.params, { id: 't1', data: 'echo' });
    term.input(' hi');
    term.input('\r');
    const count = transport.sent.length;
    t.mock.timers.tick(1000);
    assert.equal(transport.sent.filter(isCall('terminal.write')).length, 1, 'one write in flight at a time');
    transport.reply(first.id, true);
    const second = await transport.sentWhere(isCall('terminal.write'), count);
    assert.deepEqual(second.params, { id: 't1', data: ' hi\r' });
    attached.dispose();
  });

  test('onBinary input goes as data_base64, after the text typed before it', async (t) => {
    const transport = new WatchedTransport();
    const term = new Terminal({ allowProposedApi: true });
    // xterm fires onBinary only for some mouse reports: stand in for the event, keep the rest real.
    let binary;
    Object.defineProperty(term, 'onBinary', {
      value: (listener) => {
        binary = listener;
        return { dispose() {} };
      },
    });
    const attached = attachTerminal(new RpcClient(transport), term, { id: 't1' });
    t.mock.timers.enable({ apis: ['setTimeout'] });
    term.input('a');
    binary('\x80\xff');
    t.mock.timers.tick(5);
    const text = await transport.sentWhere(isCall('terminal.write'));
    assert.deepEqual(text.params, { id: 't1', data: 'a' });
    transport.reply(text.id, true);
    const bytes = await transport.sentWhere((m) => m.method === 'terminal.write' && m.id !== text.id);
    assert.deepEqual(bytes.params, { id: 't1', data_base64: Buffer.from([0x80, 0xff]).toString('base64') });
    attached.dispose();
  });

  test("each chunk's credit goes only once xterm has parsed it; the restore item is written first", async () => {
    const { transport, term, attach, parsed, release, attached } = setup({ cols: 40, rows: 5 });
    transport.chunk(attach.id, 0, [{ restore: { data: 'before\r\n', rows: 5, cols: 40 } }, { data: 'live-1\r\n' }], 2);
    await parsed();
    assert.deepEqual(screen(term).slice(0, 2), ['before', 'live-1'], 'restore then live data');
    assert.equal(transport.credits(attach.id), 0, 'parsed, but the write callback has not run');
    release();
    await transport.sentWhere((m) => m.method === '$/stream/credit');
    assert.equal(transport.credits(attach.id), 1);
    transport.chunk(attach.id, 1, [{ data: 'live-2' }], 3);
    await parsed();
    assert.equal(transport.credits(attach.id), 1, 'the second chunk is not credited before its callback');
    assert.equal(screen(term)[2], 'live-2');
    release();
    await transport.sentWhere(() => transport.credits(attach.id) === 2);
    attached.dispose();
  });

  test('a chunk xterm has not parsed holds back the next: nothing is taken ahead of the screen', async () => {
    const { transport, term, attach, parsed, release, attached } = setup({ cols: 40, rows: 5 });
    transport.chunk(attach.id, 0, [{ restore: { data: '', rows: 5, cols: 40 } }, { data: 'a' }], 2);
    transport.chunk(attach.id, 1, [{ data: 'b' }], 3);
    transport.chunk(attach.id, 2, [{ data: 'c' }], 4);
    await parsed();
    assert.equal(screen(term)[0], 'a', 'the later chunks wait in the stream');
    release();
    await parsed();
    assert.equal(screen(term)[0], 'ab');
    release();
    await parsed();
    assert.equal(screen(term)[0], 'abc');
    assert.equal(transport.credits(attach.id), 2);
    release();
    await transport.sentWhere(() => transport.credits(attach.id) === 3);
    attached.dispose();
  });

  test("term.onResize sends terminal.resize; a restore of another size resizes the host's terminal to term's", async () => {
    const { transport, term, attach, parsed, release, attached } = setup({ cols: 100, rows: 30 });
    transport.chunk(attach.id, 0, [{ restore: { data: 'x', rows: 24, cols: 80 } }], 1);
    const synced = await transport.sentWhere(isCall('terminal.resize'));
    assert.deepEqual(synced.params, { id: 't1', rows: 30, cols: 100 });
    transport.reply(synced.id, true);
    await parsed();
    release();
    const count = transport.sent.length;
    term.resize(120, 40);
    const resized = await transport.sentWhere(isCall('terminal.resize'), count);
    assert.deepEqual(resized.params, { id: 't1', rows: 40, cols: 120 });
    attached.dispose();
  });

  test('dispose() cancels the stream, drops pending keystrokes and stops listening', async (t) => {
    let exits = 0;
    const { transport, term, attach, attached } = setup(undefined, { onExit: () => exits++ });
    t.mock.timers.enable({ apis: ['setTimeout'] });
    term.input('lost');
    attached.dispose();
    attached.dispose();
    const cancel = await transport.sentWhere(isCall('$/cancelRequest'));
    assert.deepEqual(cancel.params, { id: attach.id });
    await attached.closed;
    const count = transport.sent.length;
    term.input('after');
    term.resize(90, 20);
    transport.receive({ jsonrpc: '2.0', method: 'terminal.exited', params: { id: 't1', exit_code: 0, signal: null } });
    t.mock.timers.tick(1000);
    assert.deepEqual(transport.sent.slice(count), [], 'no write, resize or anything else after dispose()');
    assert.equal(exits, 0);
  });

  test('onExit comes once, from terminal.exited, and closed resolves when the stream ends', async () => {
    const exits = [];
    const { transport, attach, attached, parsed, release } = setup(undefined, { onExit: (exit) => exits.push(exit) });
    transport.chunk(attach.id, 0, [{ restore: { data: 'bye', rows: 24, cols: 80 } }], 1);
    await parsed();
    release();
    transport.receive({ jsonrpc: '2.0', method: 'terminal.exited', params: { id: 'other', exit_code: 1, signal: null } });
    transport.receive({ jsonrpc: '2.0', method: 'terminal.exited', params: { id: 't1', exit_code: 3, signal: null } });
    transport.reply(attach.id, { items: 1, chunks: 1 });
    await attached.closed;
    assert.deepEqual(exits, [{ id: 't1', exit_code: 3, signal: null }]);
    assert.equal(transport.sent.filter(isCall('terminal.list')).length, 0);
    attached.dispose();
  });

  test('without the event, the ended stream asks terminal.list how it exited', async () => {
    const exits = [];
    const { transport, attach, attached } = setup(undefined, { onExit: (exit) => exits.push(exit) });
    transport.reply(attach.id, { items: 0, chunks: 0 });
    const list = await transport.sentWhere(isCall('terminal.list'));
    assert.deepEqual(list.params, { ids: ['t1'] });
    transport.reply(list.id, [{ id: 't1', state: 'exited', exit_code: null, signal: 'SIGKILL' }]);
    await attached.closed;
    assert.deepEqual(exits, [{ id: 't1', exit_code: null, signal: 'SIGKILL' }]);
  });

  test("closed rejects with the stream's error (no such terminal), and write errors go to onError", async () => {
    const errors = [];
    const { transport, term, attach, attached } = setup(undefined, { batchMs: 0, onError: (error) => errors.push(error.code) });
    term.input('x');
    const write = await transport.sentWhere(isCall('terminal.write'));
    transport.receive({ jsonrpc: '2.0', id: write.id, error: { code: -32602, message: 'bad' } });
    transport.receive({ jsonrpc: '2.0', id: attach.id, error: { code: 4702, message: 'no such terminal' } });
    await assert.rejects(attached.closed, (error) => error.code === 4702);
    assert.deepEqual(errors, [-32602]);
    attached.dispose();
  });

  test('data_base64 items are written as bytes, dropped items reported', async () => {
    const dropped = [];
    const { transport, term, attach, parsed, release, attached } = setup({ cols: 40, rows: 5 }, { onDropped: (n) => dropped.push(n) });
    const bytes = Buffer.from('héllo', 'utf8').toString('base64');
    transport.chunk(attach.id, 0, [{ restore: { data: '', rows: 5, cols: 40 } }, { dropped: 10 }, { data_base64: bytes }], 3);
    await parsed();
    release();
    assert.equal(screen(term)[0], 'héllo');
    assert.deepEqual(dropped, [10]);
    attached.dispose();
  });
});

describe('a stream without nextHeld (window.bridge, a Supervisor)', () => {
  test('the next chunk is taken, and so credited, only after the previous one\'s write callback', async () => {
    const transport = new WatchedTransport();
    const client = new RpcClient(transport);
    // What a window.bridge or Supervisor stream is to attachTerminal: next(), no nextHeld().
    const plain = {
      call: (...args) => client.call(...args),
      stream: (...args) => {
        const stream = client.stream(...args);
        return { next: () => stream.next(), return: (value) => stream.return(value), result: stream.result, [Symbol.asyncIterator]() { return this; } };
      },
    };
    const { term, parsed, release } = heldTerminal({ cols: 40, rows: 5 });
    const attached = attachTerminal(plain, term, { id: 't1' });
    const attach = transport.sent.find(isCall('terminal.attach'));
    transport.chunk(attach.id, 0, [{ restore: { data: 'a', rows: 5, cols: 40 } }], 1);
    transport.chunk(attach.id, 1, [{ data: 'b' }], 2);
    await parsed();
    assert.equal(transport.credits(attach.id), 1, 'the first chunk, credited as it was taken');
    assert.equal(screen(term)[0], 'a');
    release();
    await parsed();
    assert.equal(screen(term)[0], 'ab');
    assert.equal(transport.credits(attach.id), 2);
    attached.dispose();
    await attached.closed;
  });
});

describe('CallStream.nextHeld', () => {
  test("holds the chunk's credit until grant(), once; next() still credits at once", async () => {
    const transport = new FakeTransport();
    const client = new RpcClient(transport);
    const stream = client.stream('rows', { n: 3 }, { window: 1 });
    const { id } = transport.sent[0];
    const pending = stream.nextHeld();
    transport.chunk(id, 0, ['a'], 1);
    const first = await pending;
    assert.deepEqual(first.value, ['a']);
    assert.equal(transport.credits(id), 0);
    first.grant();
    first.grant();
    assert.equal(transport.credits(id), 1);
    transport.chunk(id, 1, ['b'], 2);
    transport.chunk(id, 2, ['c'], 3);
    const second = await stream.nextHeld();
    assert.deepEqual(second.value, ['b']);
    assert.equal(transport.credits(id), 1, 'a buffered chunk is held as well');
    assert.deepEqual((await stream.next()).value, ['c']);
    assert.equal(transport.credits(id), 2);
    transport.receive({ jsonrpc: '2.0', id, result: { items: 3, chunks: 3 } });
    second.grant();
    assert.equal(transport.credits(id), 2, 'no credit once the reply came');
    assert.deepEqual(await stream.nextHeld(), { done: true, value: { items: 3, chunks: 3 } });
  });
});
