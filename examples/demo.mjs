#!/usr/bin/env node
// A tour of the JavaScript client against examples/app.py (a small note store): spawn the
// Python host, call it, catch an error, receive an event, watch progress, stream the notes and
// abandon a stream, share a document, run a command in a terminal, cancel a slow call, close.
// Run from anywhere:
//
//     node examples/demo.mjs
//
// BRIDGE_PYTHON picks the interpreter (default: the repository's .venv, else python3).
// Exits 0 if everything behaved as expected, 1 otherwise.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { attachTerminal, CallCancelledError, CallTimeoutError, RpcError, spawnSidecar } from '../client_js/src/node.js';

// xterm.js without a screen (a devDependency of client_js): the terminal section draws on it.
const { Terminal } = createRequire(new URL('../client_js/package.json', import.meta.url))('@xterm/headless');

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
// "module:attr" of the app to serve; without it the host serves its built-in demo.* handlers.
// The built-in state and collab plugins join it for the shared-state part of the tour, and the
// terminal plugin (allowed to start bash only: BRIDGE_TERMINAL_COMMANDS below) for the terminal.
const hostArgs = ['-m', 'bridge', 'serve', 'examples.app:app', '--plugin', 'state', '--plugin', 'collab', '--plugin', 'terminal'];

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code) => (text) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
const bold = paint('1');
const dim = paint('2');
const green = paint('32');
const red = paint('31');

function pythonCommand() {
  if (process.env.BRIDGE_PYTHON) return process.env.BRIDGE_PYTHON;
  const venv =
    process.platform === 'win32' ? join(repoRoot, '.venv', 'Scripts', 'python.exe') : join(repoRoot, '.venv', 'bin', 'python');
  return existsSync(venv) ? venv : 'python3';
}

function section(title) {
  console.log(`\n${bold(title)}`);
}

function show(label, value) {
  console.log(`  ${label.padEnd(22)} ${typeof value === 'string' ? value : JSON.stringify(value)}`);
}

/** Stop the demo if something did not behave as documented. */
function expect(condition, what) {
  if (!condition) throw new Error(`unexpected: ${what}`);
}

/** Run `promise`, expecting it to reject with an instance of `type`; returns the error. */
async function expectRejection(promise, type) {
  try {
    const value = await promise;
    throw new Error(`unexpected: expected ${type.name}, got the result ${JSON.stringify(value)}`);
  } catch (error) {
    if (!(error instanceof type)) throw error;
    return error;
  }
}

async function main() {
  const command = pythonCommand();
  section(`Starting the host: ${command} ${hostArgs.join(' ')}`);
  const client = await spawnSidecar({
    command,
    args: hostArgs,
    cwd: repoRoot,
    // Shared documents in memory: the tour leaves nothing behind in the user's data directory.
    env: { BRIDGE_STATE_MEMORY: '1', BRIDGE_LOG_LEVEL: 'error', BRIDGE_TERMINAL_COMMANDS: '["bash"]' },
    // The host logs to stderr; stdout belongs to the protocol.
    onStderr: (line) => console.log(dim(`  host stderr │ ${line}`)),
  });

  try {
    const { name, appVersion, version, pid, framing, capabilities } = client.ready;
    show('ready:', `${name} ${appVersion} on bridge ${version}, pid ${pid}, framing ${framing}`);
    show('capabilities:', capabilities);

    section('Calls');
    const sum = await client.call('math.add', { a: 1, b: 2 });
    show('math.add {a:1, b:2}', sum);
    expect(sum === 3, `math.add returned ${sum}`);

    const positional = await client.call('math.add', [40, 2]);
    show('math.add [40, 2]', positional);
    expect(positional === 42, `math.add returned ${positional}`);

    const notes = await client.call('notes.list');
    for (const note of notes) show(`note ${note.id}`, `${note.title}: ${note.body} [${note.tags.join(', ')}]`);
    expect(Array.isArray(notes) && notes.length >= 1, 'notes.list returned no notes');

    section('Events: the host sends notifications, on() receives them');
    const changed = [];
    const unsubscribe = client.on('notes.changed', (params) => {
      changed.push(params);
      show('event notes.changed', params);
    });
    const note = await client.call('notes.create', { note: { title: 'Buy milk', body: 'oat', tags: ['shopping'] } });
    show('notes.create', `note ${note.id} created at ${note.created}`);
    unsubscribe();
    await client.call('notes.create', { note: { title: 'Not watched' } });
    show('after unsubscribe', `${changed.length} event received (the second create was not seen)`);
    expect(changed.length === 1 && changed[0].id === note.id, `received ${JSON.stringify(changed)}`);

    section('Errors are RpcError with a code, a message and data');
    const notFound = await expectRejection(client.call('notes.get', { id: 999 }), RpcError);
    show('notes.get {id:999}', `code ${notFound.code}: ${notFound.message}`);
    show('  data', notFound.data);
    expect(notFound.code === 4004, `notes.get gave code ${notFound.code}`);

    const invalid = await expectRejection(client.call('notes.create', { note: { title: '' } }), RpcError);
    show('notes.create title ""', `code ${invalid.code}`);
    for (const { loc, msg } of invalid.data.errors) show(`  field ${loc.join('.')}`, msg);
    expect(invalid.code === -32602, `invalid params gave code ${invalid.code}`);

    const missing = await expectRejection(client.call('notes.delete', { id: 1 }), RpcError);
    show('notes.delete', `code ${missing.code}: ${missing.message}`);
    expect(missing.code === -32601, `unknown method gave code ${missing.code}`);

    section('Progress: notes.digest reports as it goes');
    const steps = [];
    const digest = await client.call(
      'notes.digest',
      { rounds: 400_000 },
      {
        onProgress: ({ done, total }) => {
          steps.push(done);
          const filled = Math.round((20 * done) / total);
          show(`progress`, `[${'#'.repeat(filled)}${'.'.repeat(20 - filled)}] ${done}/${total}`);
        },
      },
    );
    show('notes.digest result', `${digest.slice(0, 16)}…`);
    expect(typeof digest === 'string' && steps.length > 0, `digest ${digest} with ${steps.length} progress steps`);

    section('Streams: notes.export yields each note title; for await takes them chunk by chunk');
    const titles = [];
    const exported = client.stream('notes.export', {}, {
      onProgress: ({ seq, done, total }) => show(`chunk ${seq}`, `${done}/${total} titles`),
    });
    for await (const items of exported) titles.push(...items);
    show('titles', titles);
    const summary = await exported.result;
    show('closing reply', summary);
    expect(titles.length === summary.items && titles.includes('Buy milk'), `exported ${JSON.stringify(titles)}`);

    // A long export paced by credit (window: 2 chunks ahead), abandoned after the first chunk:
    // break sends $/cancelRequest and the host closes the generator.
    const long = client.stream('notes.export', { repeat: 10_000, delay: 0.0001 }, { window: 2 });
    let first;
    for await (const items of long) {
      first = items;
      break;
    }
    const stopped = await long.result.catch((error) => error);
    show('break after 1 chunk', `${first.length} titles of ${long.progress.total}; result: ${stopped.name}`);
    expect(stopped instanceof CallCancelledError, `the abandoned stream ended with ${stopped}`);

    section('Shared state: two participants patch one document; a conflict is resolved');
    // One client speaks for both here; in an Electron app each window is its own participant.
    const as = (who, params) => ({ ...params, $meta: { caller: { participant: who } } });
    await client.call('collab.create_session', as('alice', { id: 'groceries', docs: ['list'], permissions: { bob: ['edit'] } }));
    await client.call('collab.join', as('bob', { session: 'groceries' }));
    const { version: base } = await client.call('state.set', as('alice', { doc: 'list', value: { title: 'Groceries', items: [] } }));
    const seen = [];
    const offChanged = client.on('state.changed', ({ from, to, author, ops }) => {
      seen.push(to);
      show(`state.changed v${from}→v${to}`, `${author}: ${ops.map((op) => `${op.op} ${op.path}`).join(', ')}`);
    });
    await client.call('state.subscribe', as('bob', { doc: 'list', since_version: base }));
    await client.call('state.patch', as('alice', { doc: 'list', base_version: base, ops: [{ op: 'replace', path: '/title', value: 'Weekend' }] }));
    await client.call('state.patch', as('bob', { doc: 'list', base_version: base, ops: [{ op: 'add', path: '/items/-', value: 'oat milk' }] }));
    show('bob, same base, other path', 'rebased and applied');
    const clash = await expectRejection(
      client.call('state.patch', as('bob', { doc: 'list', base_version: base, ops: [{ op: 'replace', path: '/title', value: 'Saturday' }] })),
      RpcError,
    );
    show('bob, same base, /title', `code ${clash.code}: ${clash.message}`);
    expect(clash.code === 4501 && clash.data.conflict_id, `expected a recorded conflict, got ${clash.code}`);
    const settled = await client.call('collab.resolve', as('alice', { conflict_id: clash.data.conflict_id, strategy: 'manual', value: 'Weekend, Saturday' }));
    const final = await client.call('state.get', as('bob', { doc: 'list' }));
    show('resolved by alice', `${settled.strategy} → v${settled.version}`);
    show('the document', final.value);
    offChanged();
    expect(final.value.title === 'Weekend, Saturday' && final.value.items[0] === 'oat milk' && seen.length === 3,
      `document ${JSON.stringify(final)} after ${seen.length} changes`);

    section('Terminals: a command on a real pty, drawn by xterm.js (headless here, @xterm/xterm in a window)');
    const term = new Terminal({ rows: 8, cols: 64, allowProposedApi: true });
    const script = 'printf "stty size: %s\\n" "$(stty size)"; printf "\\033[1;32mgreen and bold\\033[0m, café, 日本語\\n"; ls examples | grep -v __pycache__ | head -4';
    const created = await client.call('terminal.create', { command: 'bash', args: ['-c', script], cwd: repoRoot, rows: term.rows, cols: term.cols });
    show('terminal.create', `${created.id}: bash, pid ${created.pid}, ${created.rows}x${created.cols}`);
    let exitInfo = null;
    const attached = attachTerminal(client, term, { id: created.id, onExit: (info) => (exitInfo = info) });
    await attached.closed;
    const screen = [];
    for (let row = 0; row < term.rows; row++) screen.push(term.buffer.active.getLine(row)?.translateToString(true) ?? '');
    while (screen.length && screen[screen.length - 1] === '') screen.pop();
    for (const line of screen) console.log(`  ${dim('│')} ${line}`);
    show('exited', exitInfo);
    attached.dispose();
    term.dispose();
    expect(screen[0] === 'stty size: 8 64' && screen.includes('demo.mjs') && exitInfo?.exit_code === 0,
      `the terminal showed ${JSON.stringify(screen)} and exited with ${JSON.stringify(exitInfo)}`);

    section('Cancellation: abort a slow call, or give it a timeout');
    const controller = new AbortController();
    const started = Date.now();
    // Stands in for a user pressing "Cancel" half a second in.
    setTimeout(() => controller.abort(), 500);
    const cancelled = await expectRejection(
      client.call('notes.sync', { seconds: 30 }, { signal: controller.signal }),
      CallCancelledError,
    );
    show('notes.sync 30 s', `${cancelled.name} after ${Date.now() - started} ms: ${cancelled.message}`);

    const timedOut = await expectRejection(client.call('notes.sync', { seconds: 30 }, { timeout: 300 }), CallTimeoutError);
    show('notes.sync, timeout', `${timedOut.name}: ${timedOut.message}`);

    const stillThere = await client.call('math.add', [2, 2]);
    show('math.add afterwards', stillThere);
    expect(stillThere === 4, 'the host did not answer after cancellation');
  } finally {
    section('Closing');
    const exitCode = await client.close();
    show('host exit code', exitCode);
    expect(exitCode === 0, `the host exited with ${exitCode}`);
  }
}

main().then(
  () => console.log(`\n${green('Demo finished: everything behaved as expected.')}`),
  (error) => {
    console.error(`\n${red('Demo failed:')} ${error.stack ?? error}`);
    process.exitCode = 1;
  },
);
