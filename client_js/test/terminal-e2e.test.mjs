// attachTerminal() end to end: a real host with the terminal plugin (test-support/terminal_app.py)
// runs bash on a pty; a real headless xterm.js types into it and shows what it prints.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import xterm from '@xterm/headless';
import { attachTerminal, spawnSidecar } from '../src/node.js';
import { pythonCommand, supportAppOptions, supportDir } from '../test-support/host.mjs';

const { Terminal } = xterm;

/** The screen's rows (and the scrollback above), trailing blanks trimmed. */
function lines(term) {
  const buffer = term.buffer.active;
  const out = [];
  for (let row = 0; row < buffer.length; row++) out.push(buffer.getLine(row)?.translateToString(true) ?? '');
  return out;
}

/** Resolves once xterm has parsed output after which a line equals `text`. */
function lineShows(term, text) {
  return new Promise((resolve) => {
    const check = () => {
      if (!lines(term).includes(text)) return false;
      subscription?.dispose();
      resolve();
      return true;
    };
    const subscription = check() ? null : term.onWriteParsed(check);
  });
}

/** A bash with no rc files and a fixed prompt, on a pty the size of `term`. */
async function createBash(client, term) {
  return client.call('terminal.create', {
    command: 'bash',
    args: ['--norc', '--noprofile'],
    rows: term.rows,
    cols: term.cols,
    env: { TERM: 'xterm-256color' },
  });
}

describe('attachTerminal with a real host and bash', () => {
  let client;
  before(async () => {
    client = await spawnSidecar(supportAppOptions('terminal_app:app'));
  });
  after(async () => {
    await client?.close();
  });

  test('typing `echo hello` shows hello; a resize shows in `stty size`; exit comes to onExit', async () => {
    const term = new Terminal({ cols: 80, rows: 24, allowProposedApi: true });
    const { id } = await createBash(client, term);
    let onExit;
    const exited = new Promise((resolve) => {
      onExit = resolve;
    });
    const attached = attachTerminal(client, term, { id, onExit });
    term.input('echo hel""lo\r');
    await lineShows(term, 'hello');

    term.resize(100, 30);
    // The resize and the keystrokes are separate calls: wait until the host has the new size.
    for (;;) {
      const [entry] = await client.call('terminal.list', { ids: [id] });
      if (entry.rows === 30 && entry.cols === 100) break;
    }
    term.input('stty size\r');
    await lineShows(term, '30 100');

    term.input('exit 3\r');
    assert.deepEqual(await exited, { id, exit_code: 3, signal: null });
    await attached.closed;
    attached.dispose();
  });

  test('a full-screen curses program is drawn on the headless xterm where it put each line', async () => {
    const term = new Terminal({ cols: 80, rows: 24, allowProposedApi: true });
    const script = `${supportDir}curses_screen.py`;
    const { id } = await client.call('terminal.create', {
      command: 'bash',
      args: ['--norc', '--noprofile', '-c', `exec '${pythonCommand()}' '${script}'`],
      rows: term.rows,
      cols: term.cols,
      env: { TERM: 'xterm-256color' },
    });
    const attached = attachTerminal(client, term, { id });
    await new Promise((resolve) => {
      const check = () => lines(term).some((line) => line.includes('press q')) && (subscription?.dispose(), resolve(), true);
      const subscription = check() ? null : term.onWriteParsed(check);
    });
    assert.equal(term.buffer.active.type, 'alternate'); // curses took the alternate screen
    const screen = lines(term);
    assert.equal(screen.length, 24);
    assert.equal(screen[2].slice(4, 24), 'bridge terminal test');
    assert.equal(screen[22].slice(4, 23), 'size 24x80: press q');
    assert.match(screen[0], /^\S\S{78}\S$/); // the box's top edge across the whole width
    term.input('q');
    await lineShows(term, 'curses done');
    assert.equal(term.buffer.active.type, 'normal'); // and gave it back
    attached.dispose();
  });

  test('a flood of output with a small window reaches the screen whole, paced by xterm', async () => {
    const term = new Terminal({ cols: 80, rows: 24, scrollback: 100, allowProposedApi: true });
    const { id } = await createBash(client, term);
    const attached = attachTerminal(client, term, { id, window: 2 });
    term.input('seq 1 30000; echo do""ne\r');
    await lineShows(term, 'done');
    const shown = lines(term);
    assert.equal(shown[shown.indexOf('done') - 1], '30000', 'the last number just before done: nothing lost');
    const [entry] = await client.call('terminal.list', { ids: [id] });
    assert.equal(entry.dropped, 0);
    await client.call('terminal.kill', { id });
    await attached.closed;
    attached.dispose();
  });

  test('a second attachment starts from the restore item: the first one\'s output is on its screen', async () => {
    const first = new Terminal({ cols: 80, rows: 24, allowProposedApi: true });
    const { id } = await createBash(client, first);
    const one = attachTerminal(client, first, { id });
    first.input('echo ear""ly\r');
    await lineShows(first, 'early');
    one.dispose();
    await one.closed;

    const second = new Terminal({ cols: 80, rows: 24, allowProposedApi: true });
    const two = attachTerminal(client, second, { id });
    await lineShows(second, 'early');
    second.input('echo la""te\r');
    await lineShows(second, 'late');
    assert.equal(lines(first).includes('late'), false, 'the disposed attachment no longer writes');
    await client.call('terminal.kill', { id });
    await two.closed;
    two.dispose();
  });
});
