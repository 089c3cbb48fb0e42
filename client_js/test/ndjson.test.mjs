import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LineSplitter, encodeLine } from '../src/ndjson.js';

const messages = [
  { jsonrpc: '2.0', id: 1, result: 'plain ascii' },
  { jsonrpc: '2.0', method: 'demo.tick', params: { text: 'é ü ß — € 中文 😀 🏳️‍🌈' } },
  { jsonrpc: '2.0', id: 2, result: 'a string with \n a newline and \r\n CRLF inside' },
  { jsonrpc: '2.0', id: 3, result: '\u2028\u2029 line separators' },
];
const stream = Buffer.from(messages.map(encodeLine).join(''), 'utf8');

function collect(chunks) {
  const splitter = new LineSplitter();
  const lines = [];
  for (const chunk of chunks) lines.push(...splitter.push(chunk));
  lines.push(...splitter.end());
  return lines.map((line) => JSON.parse(line));
}

test('the stream contains multi-byte characters of 2, 3 and 4 bytes', () => {
  // Guards the tests below: they only mean something if there are boundaries to split inside.
  assert.ok(stream.length > Buffer.from(messages.map(encodeLine).join(''), 'latin1').length);
  assert.ok(stream.includes(Buffer.from('😀')));
});

test('one chunk with every message', () => {
  assert.deepEqual(collect([stream]), messages);
});

test('split into two chunks at every byte boundary', () => {
  for (let i = 0; i <= stream.length; i++) {
    const got = collect([stream.subarray(0, i), stream.subarray(i)]);
    assert.deepEqual(got, messages, `split at byte ${i}`);
  }
});

test('one byte per chunk', () => {
  const chunks = [];
  for (let i = 0; i < stream.length; i++) chunks.push(stream.subarray(i, i + 1));
  assert.deepEqual(collect(chunks), messages);
});

test('split at every pair of boundaries (three chunks)', () => {
  // Step through pairs around the multi-byte region, which is where decoding can go wrong.
  const step = 3;
  for (let i = 0; i <= stream.length; i += step) {
    for (let j = i; j <= stream.length; j += step) {
      const got = collect([stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]);
      assert.deepEqual(got, messages, `split at ${i} and ${j}`);
    }
  }
});

test('a reused chunk buffer does not corrupt a pending partial line', () => {
  const splitter = new LineSplitter();
  const buffer = Buffer.from('{"a":');
  assert.deepEqual(splitter.push(buffer), []);
  buffer.fill(0x20); // the caller reuses its buffer
  assert.deepEqual(splitter.push(Buffer.from('1}\n')), ['{"a":1}']);
});

test('CRLF line endings are stripped and blank lines dropped', () => {
  const splitter = new LineSplitter();
  assert.deepEqual(splitter.push(Buffer.from('{"a":1}\r\n\n  \r\n{"b":2}\n')), ['{"a":1}', '{"b":2}']);
});

test('a final line without its newline is returned by end()', () => {
  const splitter = new LineSplitter();
  assert.deepEqual(splitter.push('{"a":1}\n{"b"'), ['{"a":1}']);
  assert.deepEqual(splitter.push(':2}'), []);
  assert.deepEqual(splitter.end(), ['{"b":2}']);
  assert.deepEqual(splitter.end(), []);
});

test('string chunks are accepted', () => {
  const splitter = new LineSplitter();
  assert.deepEqual(splitter.push('{"t":"€"}\n{"t":"😀"'), ['{"t":"€"}']);
  assert.deepEqual(splitter.push('}\n'), ['{"t":"😀"}']);
});

test('encodeLine writes exactly one line', () => {
  const line = encodeLine({ text: 'a\nb\r\nc' });
  assert.equal(line.indexOf('\n'), line.length - 1);
  assert.deepEqual(JSON.parse(line), { text: 'a\nb\r\nc' });
});
