// The trace option with durations (vscode-jsonrpc's verbose trace is the model), consoleTrace's
// lines, and BRIDGE_TRACE: the Node transport's environment switch, end to end with a real host.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { traceFromEnv } from '../src/client.js';
import { RpcClient, consoleTrace } from '../src/index.js';
import { pythonCommand, repoRoot } from '../test-support/host.mjs';

/** A transport the test plays the host on. */
function fakeTransport() {
  const listeners = new Set();
  return {
    sent: [],
    send(message) {
      this.sent.push(message);
    },
    onMessage(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    onClose() {
      return () => {};
    },
    close() {},
    deliver(message) {
      for (const listener of listeners) listener(message);
    },
  };
}

test('a reply is traced with its request method and the milliseconds since it was sent', async () => {
  const transport = fakeTransport();
  const seen = [];
  const client = new RpcClient(transport, { trace: (direction, message, details) => seen.push({ direction, message, details }) });
  const call = client.call('math.add', [1, 2]);
  const before = performance.now();
  while (performance.now() - before < 5); // at least 5 ms between request and reply
  transport.deliver({ jsonrpc: '2.0', id: transport.sent[0].id, result: 3 });
  assert.equal(await call, 3);
  transport.deliver({ jsonrpc: '2.0', method: 'app/changed', params: { x: 1 } });
  assert.equal(seen.length, 3);
  assert.deepEqual(seen[0], { direction: 'send', message: transport.sent[0], details: undefined });
  assert.equal(seen[1].direction, 'receive');
  assert.equal(seen[1].details.method, 'math.add');
  assert.ok(seen[1].details.durationMs >= 5 && seen[1].details.durationMs < 5000, String(seen[1].details.durationMs));
  assert.equal(seen[2].details, undefined); // a notification answers no request
});

test('a reply to an id the client never sent has no details', () => {
  const transport = fakeTransport();
  const seen = [];
  new RpcClient(transport, { trace: (...args) => seen.push(args), onError: () => {} });
  transport.deliver({ jsonrpc: '2.0', id: 99, result: 1 });
  assert.equal(seen[0][2], undefined);
});

test('trace must be a function', () => {
  assert.throws(() => new RpcClient(fakeTransport(), { trace: 'yes' }), /trace must be a function/);
});

test('consoleTrace writes vscode-jsonrpc style lines; verbose adds params, results and error data', () => {
  const lines = [];
  const trace = consoleTrace({ write: (line) => lines.push(line) });
  trace('send', { jsonrpc: '2.0', id: 1, method: 'math.add', params: [1, 2] });
  trace('receive', { jsonrpc: '2.0', id: 1, result: 3 }, { method: 'math.add', durationMs: 2.5 });
  trace('receive', { jsonrpc: '2.0', id: 2, error: { code: -32601, message: 'Method not found' } }, { method: 'nope', durationMs: 1 });
  trace('receive', { jsonrpc: '2.0', method: '$/progress', params: { token: 1, value: 5 } });
  const stamp = String.raw`\[Trace - \d\d:\d\d:\d\d\.\d{3}\] `;
  assert.match(lines[0], new RegExp(`^${stamp}Sending request 'math\\.add - \\(1\\)'\\.$`));
  assert.match(lines[1], new RegExp(`^${stamp}Received response 'math\\.add - \\(1\\)' in 2\\.5ms\\.$`));
  assert.match(lines[2], /Received response 'nope - \(2\)' in 1ms\. Request failed: Method not found \(-32601\)\.$/);
  assert.match(lines[3], /Received notification '\$\/progress'\.$/);

  const verbose = [];
  const full = consoleTrace({ verbose: true, write: (line) => verbose.push(line) });
  full('send', { jsonrpc: '2.0', id: 1, method: 'math.add', params: [1, 2] });
  full('receive', { jsonrpc: '2.0', id: 1, result: 3 }, { method: 'math.add', durationMs: 2.5 });
  full('receive', { jsonrpc: '2.0', id: 2, error: { code: 4000, message: 'no', data: { why: 'x' } } });
  assert.match(verbose[0], /\nParams: \[1,2\]$/);
  assert.match(verbose[1], /\nResult: 3$/);
  assert.match(verbose[2], /Received response '\(2\)'\. Request failed: no \(4000\)\.\nError data: \{"why":"x"\}$/);
  assert.throws(() => consoleTrace({ write: 'stderr' }), /write must be a function/);
});

test('BRIDGE_TRACE: 1 or messages, verbose, off; anything else is a clear error', () => {
  const lines = [];
  const write = (line) => lines.push(line);
  for (const off of [undefined, '', '0', 'off', 'false']) assert.equal(traceFromEnv(off, write), undefined);
  traceFromEnv('1', write)('send', { jsonrpc: '2.0', id: 1, method: 'm', params: { a: 1 } });
  traceFromEnv('verbose', write)('send', { jsonrpc: '2.0', id: 1, method: 'm', params: { a: 1 } });
  assert.doesNotMatch(lines[0], /Params/);
  assert.match(lines[1], /\nParams: \{"a":1\}$/);
  assert.throws(() => traceFromEnv('loud', write), /BRIDGE_TRACE must be 0, 1, messages or verbose, not "loud"/);
});

/** Run a Node script that spawns the demo host with BRIDGE_TRACE set; its stderr and exit code. */
function runWithTrace(value, body) {
  const script = `
    import { spawnSidecar } from ${JSON.stringify(new URL('../src/node.js', import.meta.url).href)};
    const options = { command: ${JSON.stringify(pythonCommand())}, args: ['-m', 'bridge', 'serve', 'bridge.builtins.demo:app'],
                      cwd: ${JSON.stringify(repoRoot)}, readyTimeout: 20000, onStderr: null };
    ${body}
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, BRIDGE_TRACE: value },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

test('BRIDGE_TRACE=1 makes the Node transport print each message and reply time to stderr (real host)', async () => {
  const { code, stderr } = await runWithTrace('1', `
    const client = await spawnSidecar(options);
    await client.call('rpc.ping');
    await client.close();
  `);
  assert.equal(code, 0, stderr);
  assert.match(stderr, /\[Trace - [\d:.]+\] Received notification '\$\/ready'\./);
  const sent = stderr.match(/Sending request 'rpc\.ping - \((\d+)\)'\./);
  assert.ok(sent, stderr);
  assert.match(stderr, new RegExp(`Received response 'rpc\\.ping - \\(${sent[1]}\\)' in \\d+(\\.\\d+)?ms\\.`));
  assert.doesNotMatch(stderr, /Result:/); // not verbose
});

test('a bad BRIDGE_TRACE rejects spawnSidecar before any host starts', async () => {
  const { code, stderr } = await runWithTrace('loud', `
    await spawnSidecar(options).then(() => process.exit(1), (error) => { console.error(error.message); process.exit(0); });
  `);
  assert.equal(code, 0, stderr);
  assert.match(stderr, /BRIDGE_TRACE must be 0, 1, messages or verbose, not "loud"/);
});

test('an explicit trace option wins over BRIDGE_TRACE', async () => {
  const { code, stderr } = await runWithTrace('verbose', `
    let count = 0;
    const client = await spawnSidecar({ ...options, trace: () => count++ });
    await client.call('rpc.ping');
    await client.close();
    console.error('traced ' + (count > 0));
  `);
  assert.equal(code, 0, stderr);
  assert.match(stderr, /^traced true\n?$/);
});
