// The page of tests/tauri/test_webview.py: the project's Tauri transport with the real
// '@tauri-apps/plugin-shell' (bundled by esbuild), driving the sidecar the capability file of
// examples/tauri allows. Each step's outcome goes to the test's loopback endpoint (REPORT_URL,
// set at bundle time) and onto the page for the screenshot.

import { Command } from '@tauri-apps/plugin-shell';
import { CallCancelledError, ConnectionClosedError, ErrorCodes, RpcError, createTauriSidecar } from '../../../client_js/src/tauri.js';

/* global REPORT_URL */
const steps = document.getElementById('steps');
const results = [];

function post(body) {
  return fetch(REPORT_URL, { method: 'POST', body: JSON.stringify(body) });
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function step(name, run) {
  const item = document.createElement('li');
  item.textContent = name;
  steps.append(item);
  let outcome;
  try {
    outcome = { name, ok: true, detail: (await run()) ?? null };
  } catch (error) {
    outcome = { name, ok: false, detail: `${error?.name}: ${error?.message ?? error}` };
  }
  item.className = outcome.ok ? 'ok' : 'failed';
  if (!outcome.ok) item.textContent += ` - ${outcome.detail}`;
  results.push(outcome);
  await post({ step: outcome });
  return outcome;
}

/** The sidecar as examples/tauri starts it; `trace` watchers see every message. */
function start(args, watchers = new Set(), options = {}) {
  const client = createTauriSidecar({
    ...options,
    Command,
    program: 'binaries/bridge-host',
    args,
    env: { BRIDGE_LOG_LEVEL: 'warning' },
    onStderr: null,
    trace: (direction, message) => watchers.forEach((watch) => watch(direction, message)),
  });
  return client;
}

/** The first message in `direction` that passes `predicate`. */
function traced(watchers, direction, predicate) {
  return new Promise((resolve) => {
    const watch = (dir, message) => {
      if (dir !== direction || !predicate(message)) return;
      watchers.delete(watch);
      resolve(message);
    };
    watchers.add(watch);
  });
}

async function main() {
  const pids = [];
  await step('fixed args: the capability runs ["serve"], not the page\'s args', async () => {
    const client = await start(['serve', 'other:app', '--debug']);
    pids.push(client.child.pid);
    const argv = await client.call('sidecar.argv');
    check(JSON.stringify(argv) === '["serve"]', `the sidecar got ${JSON.stringify(argv)}`);
    check((await client.close()) === 0, 'exited by itself after $/exit');
    return { argv, ready: client.ready.name };
  });

  await step('a sidecar tauri.conf.json does not list is refused', async () => {
    const error = await createTauriSidecar({ Command, program: 'binaries/elsewhere' }).then(() => null, (e) => e);
    check(error instanceof ConnectionClosedError, `rejected with ${error}`);
    return { message: error.message };
  });

  const watchers = new Set();
  let client;
  await step('$/ready', async () => {
    client = await start(['serve'], watchers);
    pids.push(client.child.pid);
    check(client.ready.framing === 'ndjson', `framing ${client.ready.framing}`);
    check(client.ready.pid === client.child.pid, 'the ready pid is the child the plugin spawned');
    return { name: client.ready.name, pid: client.ready.pid };
  });
  if (!client) return finish(pids);

  await step('calls by name and by position', async () => {
    check((await client.call('system.ping')) === 'pong', 'ping');
    check((await client.call('demo.add', [1, 2])) === 3, 'by position');
    check((await client.call('demo.add', { a: 2, b: 5 })) === 7, 'by name');
  });

  await step('a large multi-byte echo', async () => {
    const big = '😀ab€ \u2028 "q" \\ \n'.repeat(40_000);
    const echoed = await client.call('demo.echo', { value: big });
    check(echoed === big, `echoed ${echoed.length} UTF-16 units, sent ${big.length}`);
    return { length: big.length };
  });

  await step('progress', async () => {
    const values = [];
    check((await client.call('demo.count', { n: 3 }, { onProgress: (value) => values.push(value) })) === 3, 'result');
    check(JSON.stringify(values) === JSON.stringify([1, 2, 3].map((done) => ({ done, total: 3 }))), JSON.stringify(values));
  });

  await step('events', async () => {
    const event = new Promise((resolve) => client.on('demo.tick', resolve));
    await client.call('demo.emit', { event: 'demo.tick', payload: { n: 1 } });
    check(JSON.stringify(await event) === '{"n":1}', 'payload');
  });

  await step('a stream paced by credit', async () => {
    const credit = 2;
    let received = 0;
    let credited = 0;
    let ahead = 0;
    const watch = (direction, message) => {
      if (direction === 'receive' && message.method === '$/stream') ahead = Math.max(ahead, ++received - credited);
      if (direction === 'send' && message.method === '$/stream/credit') credited += message.params.credit;
    };
    watchers.add(watch);
    try {
      const items = [];
      for await (const chunk of client.stream('data.rows', { n: 95 }, { window: credit })) items.push(...chunk);
      check(items.length === 95 && items[94] === 'row 94', `${items.length} items`);
      check(received === 10 && credited === 10, `${received} chunks, ${credited} credits`);
      check(ahead <= credit, `${ahead} chunks ahead of the credit`);
      return { received, credited, ahead };
    } finally {
      watchers.delete(watch);
    }
  });

  await step('an abort sends $/cancelRequest; the host answers -32800', async () => {
    const controller = new AbortController();
    const reachedHost = traced(watchers, 'send', (message) => message.method === 'demo.sleep');
    const call = client.call('demo.sleep', { seconds: 30 }, { signal: controller.signal });
    const { id } = await reachedHost;
    check((await client.call('system.ping')) === 'pong', 'the host reads in order');
    const hostReply = traced(watchers, 'receive', (message) => message.id === id);
    controller.abort();
    const error = await call.then(() => null, (e) => e);
    check(error instanceof CallCancelledError, `rejected with ${error}`);
    check((await hostReply).error.code === ErrorCodes.RequestCancelled, 'host reply');
  });

  await step('an error keeps its code, message and data', async () => {
    const error = await client.call('demo.fail', { message: 'nope' }).then(() => null, (e) => e);
    check(error instanceof RpcError && error.code === 1001 && error.message === 'nope', `${error}`);
    check(typeof error.data?.hint === 'string', `data ${JSON.stringify(error.data)}`);
    return { code: error.code, data: error.data };
  });

  await step('close() sends $/exit: the call in flight finishes, the host exits 0', async () => {
    const inFlight = client.call('demo.sleep', { seconds: 0.3 });
    check((await client.close()) === 0, 'exited by itself, not killed');
    check((await inFlight) === 0.3, 'the call read before $/exit was answered');
    const after = await client.call('system.ping').then(() => null, (e) => e);
    check(after instanceof ConnectionClosedError, 'closed for good');
  });

  await step('close() kills a sidecar still busy after closeTimeout; calls in flight reject', async () => {
    const busy = await start(['serve'], new Set(), { closeTimeout: 300 });
    pids.push(busy.child.pid);
    const inFlight = busy.call('demo.sleep', { seconds: 30 });
    check((await busy.call('system.ping')) === 'pong', 'ping, read after the sleep');
    check((await busy.close()) === null, 'killed, so no exit code');
    const error = await inFlight.then(() => null, (e) => e);
    check(error instanceof ConnectionClosedError && error.signal === 9, `${error} (signal ${error?.signal})`);
  });

  let leftOpen = null;
  await step('a sidecar left open, for the app\'s exit to end', async () => {
    const open = await start(['serve']);
    check((await open.call('system.ping')) === 'pong', 'ping');
    leftOpen = open.child.pid;
    return { pid: leftOpen };
  });
  return finish(pids, leftOpen);
}

async function finish(pids, leftOpen = null) {
  const failed = results.filter((result) => !result.ok).length;
  document.getElementById('status').textContent = failed ? `${failed} step(s) failed` : `all ${results.length} steps passed`;
  // Report once the outcome is painted, so the test's screenshot shows it.
  await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  await post({ done: true, pids, leftOpen, results });
}

main().catch((error) => post({ done: true, crashed: `${error?.name}: ${error?.message}`, results }));
