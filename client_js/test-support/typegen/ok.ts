// A consumer of the API map `bridge types` writes for notes_app.py: test/typegen.test.mjs
// compiles it with tsc --strict (no diagnostic allowed), then runs the JavaScript against the real
// app, so the declared types are checked against what arrives over the pipe.

import assert from 'node:assert/strict';
import {
  RpcError,
  Supervisor,
  spawnSidecar,
  superviseSidecar,
  type ErrorDataOf,
  type ItemOf,
  type ResultWithMeta,
  type SidecarClient,
} from '@bridge-rpc/client/node';
import type { Api, Color, Note, NoteSaved, Tag, Tick } from './bridge-api.js';

const python = process.env.TYPEGEN_PYTHON ?? 'python3';
const cwd = process.env.TYPEGEN_APP_DIR;
const args = ['-m', 'bridge', 'serve', 'notes_app:app', '--no-plugins'];

const client: SidecarClient<Api> = await spawnSidecar<Api>({ command: python, args, cwd, onStderr: null });
try {
  const note: Note = { title: 'first', created: '2024-01-02T03:04:05Z', tags: [{ name: 'a', color: 'green' }] };
  const saved = new Promise<NoteSaved>((resolve) => {
    const off = client.on('notes.saved', (params, event) => {
      assert.equal(event, 'notes.saved');
      off();
      resolve(params);
    });
  });
  const back = await client.call('notes.save', { note });
  assert.equal(back.title.toUpperCase(), 'FIRST');
  assert.ok(!Number.isNaN(Date.parse(back.created)), 'a datetime arrives as an ISO string');
  const color: Color | undefined = back.tags?.[0]?.color;
  assert.equal(color, 'green');
  assert.equal((await saved).title, 'first');

  assert.equal((await client.call('notes.save', [note])).title, 'first'); // by position
  const found = await client.call('notes.find', { query: 'q', color: 'red', limit: 5 });
  assert.deepEqual(found.map((n) => n.title), ['q0', 'q1']);
  const words: number | undefined = found[1]?.counts?.['words'];
  assert.equal(words, 1);
  assert.equal(found[0]?.body ?? null, null);
  assert.equal((await client.call('notes.find', ['r'])).length, 2);

  const total: number = await client.call('math.total', [1, 2, 3.5]);
  assert.equal(total, 6.5);
  assert.equal(await client.call('math.total'), 0); // *numbers: no params needed
  const swapped: [string, number] = await client.call('pairs.swap', [[1, 'a']]);
  assert.deepEqual(swapped, ['a', 1]);
  const area: number = await client.call('shapes.area', { shape: { kind: 'square', side: 2 } });
  assert.equal(area, 4);
  const now: string = await client.call('clock.now');
  assert.ok(!Number.isNaN(Date.parse(now)));

  const tags: Tag[] = [];
  const stream = client.stream('notes.export', { prefix: 'p', count: 3 }, { window: 2 });
  for await (const chunk of stream) tags.push(...chunk);
  assert.deepEqual(tags.map((tag) => `${tag.name}:${tag.color}`), ['p0:red', 'p1:red', 'p2:red']);
  const item: ItemOf<Api, 'notes.export'> = tags[0]!;
  assert.equal(item.name, 'p0');

  await assert.rejects(client.call('notes.save', { note: { ...note, title: '' } }), (error) => {
    assert.ok(error instanceof RpcError && error.code === 4001);
    const data = error.data as ErrorDataOf<Api, 'notes.save', 4001>;
    assert.equal(data.field, 'title');
    return true;
  });
} finally {
  await client.close();
}

// Checked by tsc only.
export async function alsoTyped(): Promise<void> {
  const supervised = superviseSidecar<Api>({ command: python, args, health: false });
  const notes: Note[] = await supervised.call('notes.find', { query: 'x' });
  const byStart = new Supervisor({ start: () => spawnSidecar<Api>({ command: python, args }) });
  for await (const chunk of byStart.stream('notes.export', { prefix: 'x' })) console.log(chunk.map((tag) => tag.name));
  const items: Tag[] = await byStart.call('notes.export', { prefix: 'x' }); // call() collects a stream's items
  const meta: ResultWithMeta<Note[]> = await client.call('notes.find', { query: 'x' }, { meta: true });
  console.log(notes.length, items.length, meta.meta?.handlerMs);
}

export function renderer(): void {
  void window.bridge.call('notes.find', { query: 'x' }, { timeout: 1000 }).then((notes) => notes[0]?.title.toUpperCase());
  const off = window.bridge.on('clock.ticked', (tick: Tick) => tick.n.toFixed());
  off();
  void (async () => {
    for await (const chunk of window.bridge.stream('notes.export', { prefix: 'w' }, { window: 4 })) console.log(chunk[0]?.name);
  })();
}
