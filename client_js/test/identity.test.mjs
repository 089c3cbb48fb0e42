// participantOf derives the same participant ids as the host (bridge/identity.py): both are
// checked against tests/identity_vectors.json.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { declaresParticipant } from '../src/identity.js';
import { participantOf } from '../src/index.js';

const vectors = JSON.parse(readFileSync(new URL('../../tests/identity_vectors.json', import.meta.url), 'utf8'));

test('participantOf matches the host on every shared vector', () => {
  assert.ok(vectors.length >= 10);
  for (const { declared, participant } of vectors) {
    assert.equal(participantOf(declared), participant, JSON.stringify(declared));
  }
});

test('ids the host would digest are not routed by', () => {
  assert.equal(participantOf('x'.repeat(257)), null);
  assert.equal(participantOf('x'.repeat(256)), 'x'.repeat(256));
});

test('declaresParticipant: whether the host tells the caller from its connection (long ids included)', () => {
  for (const { declared, participant } of vectors) {
    assert.equal(declaresParticipant(declared), participant !== null, JSON.stringify(declared));
  }
  assert.equal(declaresParticipant('x'.repeat(257)), true);
  assert.equal(declaresParticipant(undefined), false);
  assert.equal(declaresParticipant({ window: undefined, frame: 'x' }), false);
});
