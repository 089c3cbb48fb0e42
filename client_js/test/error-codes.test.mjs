// The JS ErrorCodes are the host's codes: the same names (CamelCase of bridge/errors.py's
// ErrorCode members) and the same numbers, read from the Python module itself.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { ErrorCodes } from '../src/index.js';
import { pythonCommand, repoRoot } from '../test-support/host.mjs';

test('ErrorCodes lists exactly the codes of bridge.errors.ErrorCode', () => {
  const script = 'import json; from bridge.errors import ErrorCode; '
    + 'print(json.dumps({c.name: c.value for c in ErrorCode}))';
  const python = JSON.parse(execFileSync(pythonCommand(), ['-c', script], { cwd: repoRoot }).toString());
  const camel = (name) => name.toLowerCase().replace(/(^|_)([a-z])/g, (_, __, c) => c.toUpperCase());
  const expected = Object.fromEntries(Object.entries(python).map(([name, code]) => [camel(name), code]));
  assert.deepEqual({ ...ErrorCodes }, expected);
});
