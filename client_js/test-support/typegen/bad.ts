// Misuses of the API map that tsc --strict must reject: test/typegen.test.mjs checks that each line
// marked `// error TSnnnn: text` gets that diagnostic, and that no other line gets any.

import { spawnSidecar } from '@bridge-rpc/client/node';
import type { ErrorDataOf } from '@bridge-rpc/client';
import type { Api } from './bridge-api.js';

const client = await spawnSidecar<Api>({ command: 'python3' });
const note = { title: 'n', created: '2024-01-02T03:04:05Z' };

await client.call('notes.nope', {}); // error TS2345: "notes.nope"
await client.call('notes.find', { query: 1 }); // error TS2322: Type 'number' is not assignable to type 'string'
await client.call('notes.find', { query: 'q', limt: 1 }); // error TS2353: 'limt' does not exist
await client.call('notes.find'); // error TS2554: Expected 2-3 arguments, but got 1
await client.call('notes.find', { query: 'q', color: 'blue' }); // error TS2322: '"blue"' is not assignable
await client.call('notes.save', { note: { ...note, created: new Date() } }); // error TS2322: 'Date' is not assignable to type 'string'
await client.call('math.total', { numbers: [1] }); // error TS2353: 'numbers' does not exist
await client.call('math.total', [1, 'two']); // error TS2322: Type 'string' is not assignable to type 'number'
await client.call('pairs.swap', { pair: [1, 'a'] }); // error TS2353: 'pair' does not exist
await client.call('clock.now', { extra: 1 }); // error TS2345: '{ extra: number; }' is not assignable
const count: number = await client.call('notes.save', { note }); // error TS2322: 'Note' is not assignable to type 'number'
(await client.call('notes.find', { query: 'q' }))[0]?.titel; // error TS2551: Property 'titel' does not exist
(await client.call('notes.save', { note })).body.length; // error TS2533: possibly 'null' or 'undefined'
for await (const tags of client.stream('notes.export', { prefix: 'p' })) tags[0]?.name.toFixed(); // error TS2551: Property 'toFixed' does not exist on type 'string'
client.stream('notes.find', { query: 'q' }); // error TS2345: "notes.find"
client.on('notes.saved', (saved) => saved.at.getTime()); // error TS2339: Property 'getTime' does not exist on type 'string'
client.on('notes.deleted', () => {}); // error TS2345: "notes.deleted"
const data: ErrorDataOf<Api, 'notes.save', 4001> = { field: 1 }; // error TS2322: Type 'number' is not assignable to type 'string'
const swapped: [number, string] = await client.call('pairs.swap', [[1, 'a']]); // error TS2322: '[string, number]' is not assignable to type '[number, string]'
window.bridge.call('notes.nope'); // error TS2345: "notes.nope"
window.bridge.on('clock.ticked', (tick) => tick.n.toUpperCase()); // error TS2339: Property 'toUpperCase' does not exist on type 'number'
console.log(count, data, swapped);
