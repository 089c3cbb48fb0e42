// The whole API used as an app would, through the package's own "exports" names. Never run:
// test/types.test.mjs has tsc check it with --strict. Each @ts-expect-error line must stay an
// error, so the declarations cannot quietly become `any`.

import {
  CallCancelledError,
  ConnectionClosedError,
  ErrorCodes,
  RpcClient,
  RpcError,
  Supervisor,
  type Caller,
  type CallStream,
  type Message,
  type ReadyInfo,
  type ReplyMeta,
  type ResultWithMeta,
  type StepProgress,
  type StreamProgress,
  type StreamResult,
  type Transport,
  type Unsubscribe,
} from '@bridge-rpc/client';
import { spawnSidecar, superviseSidecar, SidecarCrashedError, type SidecarClient } from '@bridge-rpc/client/node';
import { exposeToRenderers, type CallerIdentity } from '@bridge-rpc/client/electron/main';
import { exposeBridge, type RendererBridge } from '@bridge-rpc/client/electron/preload';
import { createTauriSidecar, sidecarName, type TauriSidecarClient } from '@bridge-rpc/client/tauri';
import { app, contextBridge, ipcMain, ipcRenderer } from 'electron';
import { Command } from '@tauri-apps/plugin-shell';
import { attachTerminal, type HeldChunk, type TerminalAttachment, type TerminalExit } from '@bridge-rpc/client';
import { Terminal } from '@xterm/headless';

declare global {
  interface Window {
    bridge: RendererBridge;
  }
}

/** A transport of one's own: RpcClient takes anything with these four members. */
class LoopbackTransport implements Transport {
  #onMessage = new Set<(message: unknown) => void>();
  send(message: Message): void {
    if ('id' in message && 'method' in message) {
      for (const listener of this.#onMessage) listener({ jsonrpc: '2.0', id: message.id, result: message.method });
    }
  }
  onMessage(listener: (message: unknown) => void): Unsubscribe {
    this.#onMessage.add(listener);
    return () => this.#onMessage.delete(listener);
  }
  onClose(_listener: (error?: Error) => void): Unsubscribe {
    return () => {};
  }
  close(): void {}
}

export async function core(): Promise<void> {
  const client = new RpcClient(new LoopbackTransport(), { timeout: 1000, onError: (error) => console.error(error.message) });
  const sum: number = await client.call<number>('demo.add', { a: 1, b: 2 });
  await client.call('demo.add', [sum, 2], { timeout: null });
  await client.call('demo.add', [sum, 2], { caller: { window: 3, frame: 'app://index.html' } });
  client.notify('demo.emit', ['e'], { caller: 'alice' });
  client.stream('demo.rows', [1], { caller: { participant: 'bob' } });
  const off: Unsubscribe = client.on<{ n: number }>('demo.tick', (params, method) => `${method} ${params.n.toFixed()}`);
  off();
  await client.call('demo.count', { n: 3 }, { onProgress: (value: StepProgress) => value.done / value.total });
  const controller = new AbortController();
  try {
    await client.call('demo.sleep', { seconds: 1 }, { signal: controller.signal });
  } catch (error) {
    if (error instanceof RpcError && error.code === ErrorCodes.InvalidParams) console.log(error.data);
    if (error instanceof CallCancelledError) console.log(error.method, error.name satisfies 'AbortError');
    if (error instanceof ConnectionClosedError) console.log(error.exitCode, error.signal);
  }
  const stream: CallStream<string> = client.stream<string>('data.export', { query: 'x' }, {
    window: 8,
    signal: controller.signal,
    timeout: null,
    onProgress: (progress: StreamProgress) => progress.done / (progress.total ?? 1),
  });
  for await (const items of stream) {
    console.log(items.map((item) => item.toUpperCase()), stream.progress?.seq);
    break;
  }
  const closing: StreamResult = await stream.result;
  console.log(closing.items, closing.chunks);
  // @ts-expect-error chunks are arrays of items
  for await (const items of client.stream<string>('data.export')) items.toUpperCase();
  client.onClose((error) => error.message);
  // @ts-expect-error params are an object or an array
  await client.call('demo.echo', 'text');

  // Reply metadata: `meta: true` resolves with { result, meta }.
  const added: ResultWithMeta<number> = await client.call<number>('demo.add', { a: 1, b: 2 }, { meta: true, timeout: 100 });
  const meta: ReplyMeta | undefined = added.meta;
  console.log(added.result.toFixed(), meta?.handlerMs.toFixed(), meta?.cached, meta?.shared);
  const rows: string[] = (await client.call<string[]>('data.export', {}, { meta: true })).result; // a stream's items
  console.log(rows.length);
  // @ts-expect-error positional params cannot carry $meta
  await client.call('demo.add', [1, 2], { meta: true });
  // @ts-expect-error without meta: true the result comes alone
  console.log((await client.call<number>('demo.add', { a: 1, b: 2 })).result);
  const asked = Math.random() > 0.5;
  // @ts-expect-error meta is the literal true, so the result's type is known
  await client.call('demo.add', {}, { meta: asked });
  try {
    await client.call('demo.fail', {}, { meta: true });
  } catch (error) {
    if (error instanceof RpcError) console.log(error.meta?.handlerMs);
  }

  // Retries of idempotent calls refused with -32003/-32004/-32005.
  const retrying = new RpcClient(new LoopbackTransport(), {
    retry: { attempts: 5, delay: 50, maxDelay: 2000, methods: { 'notes.save': false, 'notes.get': { attempts: 8 } } },
  });
  await retrying.call('notes.get', { id: 1 }, { retry: { attempts: 2, random: () => 0, sleep: async () => {} }, idempotent: true });
  await retrying.call('notes.get', { id: 1 }, { retry: false, signal: controller.signal });
  // @ts-expect-error attempts is a number
  new RpcClient(new LoopbackTransport(), { retry: { attempts: '5' } });
  // @ts-expect-error ErrorCodes is read-only
  ErrorCodes.ParseError = 1;
}

export async function node(): Promise<void> {
  const sidecar: SidecarClient = await spawnSidecar({ command: 'python3', args: ['-m', 'bridge', 'serve', 'myapp:app'], onStderr: null });
  const ready: ReadyInfo = sidecar.ready;
  console.log(ready.pid.toFixed(), sidecar.process.pid);
  const exitCode: number | null = await sidecar.close();
  console.log(exitCode);
  // @ts-expect-error command is required
  await spawnSidecar({ args: [] });
  const bridge = superviseSidecar({ command: 'python3', args: ['-m', 'bridge', 'serve', 'myapp:app'], health: false });
  const retried = new Supervisor({
    start: () => spawnSidecar({ command: 'python3', args: ['-m', 'bridge', 'serve', 'myapp:app'] }),
    retry: { attempts: 4, methods: { 'notes.poll': { maxDelay: 1000 } } },
  });
  const looked: ResultWithMeta<string> = await retried.call<string>('notes.title', { id: 1 }, { meta: true, idempotent: true, retry: { attempts: 2 } });
  console.log(looked.result.toUpperCase(), looked.meta?.shared);
  try {
    for await (const rows of bridge.stream<{ id: number }>('data.export', {}, { window: 4 })) console.log(rows[0]?.id);
  } catch (error) {
    if (error instanceof SidecarCrashedError) console.log(error.method);
  }
}

export function electronMain(client: SidecarClient): void {
  const unexpose: () => void = exposeToRenderers(client, {
    ipcMain,
    allow: ['system.ping', 'notes.*'],
    events: ['notes.saved'],
    caller: (event): CallerIdentity => ({ window: event.sender.id, frame: event.senderFrame?.url }),
  });
  app.on('will-quit', unexpose);
  // @ts-expect-error the allowlist is required: nothing is exposed by default
  exposeToRenderers(client, { ipcMain });
}

export function electronPreload(): void {
  exposeBridge({ contextBridge, ipcRenderer });
  exposeBridge({ contextBridge, ipcRenderer, name: 'notes', channel: 'notes' });
  // @ts-expect-error both Electron modules are needed
  exposeBridge({ contextBridge });
}

export async function renderer(): Promise<void> {
  const controller = new AbortController();
  try {
    const slept = await window.bridge.call<number>('demo.sleep', { seconds: 1 }, { signal: controller.signal, timeout: 5000 });
    console.log(slept.toFixed());
    await window.bridge.call('demo.count', { n: 3 }, { onProgress: (value: StepProgress) => value.done });
  } catch (error) {
    if (error instanceof window.bridge.RpcError) console.log(error.code.toFixed(), error.data);
    if (error instanceof window.bridge.CallCancelledError) console.log(error.method);
  }
  for await (const titles of window.bridge.stream<string>('notes.export', {}, { window: 4, signal: controller.signal })) {
    console.log(titles.join(', '));
    break;
  }
  const off: Unsubscribe = window.bridge.on<{ tick: number }>('demo.tick', (params) => params.tick);
  off();
  // @ts-expect-error the page has no notify(): only call and on cross the bridge
  window.bridge.notify('x');
}

export async function tauri(): Promise<void> {
  const entry: string = sidecarName('src-tauri/binaries/bridge-host-x86_64-unknown-linux-gnu');
  console.log(entry);
  const client: TauriSidecarClient = await createTauriSidecar({
    Command,
    program: 'binaries/bridge-host',
    args: ['serve'],
    env: { BRIDGE_LOG_LEVEL: 'warning' },
    encoding: 'raw',
  });
  console.log(client.ready.framing, client.child.pid);
  await client.call('system.ping');
  const exitCode: number | null = await client.close();
  console.log(exitCode);
  // @ts-expect-error the Command class is required: the package does not import the plugin
  await createTauriSidecar({ program: 'binaries/bridge-host' });
  // The Supervisor is transport-free: it restarts a Tauri sidecar as it does a Node one.
  const supervised: Caller = new Supervisor({ start: () => createTauriSidecar({ Command, args: ['serve'] }), health: false });
  await supervised.call('system.ping');
  console.log(client.stderrTail.join('\n'));
}

/** An API map of the shape `bridge types` writes (test/typegen.test.mjs generates a real one). */
interface DemoApi {
  methods: {
    'demo.add': { params: { a: number; b: number }; positional: [a: number, b: number]; result: number };
    'demo.rows': { params: { n?: number }; positional: [n?: number]; result: { [key: string]: number }; item: { id: number } };
  };
  events: { 'demo.tick': { n: number } };
}

export async function typed(transport: Transport, tauri: TauriSidecarClient<DemoApi>): Promise<void> {
  const client = new RpcClient<DemoApi>(transport);
  const sum: number = await client.call('demo.add', { a: 1, b: 2 });
  await client.call('demo.add', [sum, 2], { timeout: null });
  for await (const rows of client.stream('demo.rows')) console.log(rows[0]?.id.toFixed());
  const off: Unsubscribe = client.on('demo.tick', (params) => params.n.toFixed());
  off();
  const added: ResultWithMeta<number> = await tauri.call('demo.add', { a: 1, b: 2 }, { meta: true });
  const supervisor = new Supervisor({ start: () => spawnSidecar<DemoApi>({ command: 'python3' }) });
  const rows: { id: number }[] = await supervisor.call('demo.rows', { n: 1 }, { idempotent: true });
  const page: RendererBridge<DemoApi> = window.bridge;
  exposeToRenderers(tauri, { ipcMain, allow: ['demo.*'] }); // a typed client serves windows too
  console.log(added.result, rows.length, await page.call('demo.add', [1, 2]));
  // @ts-expect-error an unknown method
  await client.call('demo.nope');
  // @ts-expect-error a param of the wrong type
  await client.call('demo.add', { a: '1', b: 2 });
  // @ts-expect-error demo.add needs its params
  await client.call('demo.add');
  // @ts-expect-error the result is a number
  const text: string = await supervisor.call('demo.add', [1, 2]);
  // @ts-expect-error only streaming methods stream
  client.stream('demo.add', [1, 2]);
  // @ts-expect-error an event the API does not declare
  client.on('demo.tock', () => {});
  // @ts-expect-error the page's call() has no meta option
  await page.call('demo.add', [1, 2], { meta: true });
  console.log(text);
}

export async function terminal(rpc: RpcClient, supervisor: Supervisor, page: RendererBridge): Promise<void> {
  const term = new Terminal({ cols: 100, rows: 30, allowProposedApi: true });
  const { id } = await rpc.call<{ id: string }>('terminal.create', { command: 'bash', rows: term.rows, cols: term.cols });
  const attached: TerminalAttachment = attachTerminal(rpc, term, {
    id,
    window: 8,
    onExit: (exit: TerminalExit) => console.log(exit.exit_code?.toFixed(), exit.signal),
    onError: (error) => console.error(error),
  });
  attachTerminal(supervisor, term, { id }).dispose();
  attachTerminal(page, term, { id, batchMs: 2 }).dispose();
  await attached.closed;
  attached.dispose();
  const step = await rpc.stream<string>('data.export').nextHeld?.();
  if (step && !step.done) {
    const held: HeldChunk<string> = step;
    held.value.map((item) => item.toUpperCase());
    held.grant();
  }
  // @ts-expect-error the terminal's id is required
  attachTerminal(rpc, term, {});
  // @ts-expect-error a Terminal, not its element
  attachTerminal(rpc, {}, { id });
}
