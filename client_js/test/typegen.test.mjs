// `bridge types` end to end: the TypeScript it writes for a real app (test-support/typegen/notes_app.py)
// types the client. tsc --strict compiles a consumer that must pass, whose JavaScript then runs
// against the app over its pipes, and one whose every marked line must fail with its diagnostic.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { pythonCommand, repoRoot } from '../test-support/host.mjs';

const packageRoot = fileURLToPath(new URL('../', import.meta.url));
const fixtures = fileURLToPath(new URL('../test-support/typegen/', import.meta.url));
const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
const env = { ...process.env, PYTHONPATH: repoRoot };

function run(command, args, options = {}) {
  return new Promise((resolve) => {
    execFile(command, args, { env, ...options }, (error, stdout, stderr) => {
      resolve({ code: error ? (error.code ?? 1) : 0, stdout, stderr, output: `${stdout}${stderr}`.trim() });
    });
  });
}

const compilerOptions = {
  strict: true,
  target: 'es2022',
  module: 'nodenext',
  moduleResolution: 'nodenext',
  lib: ['es2022', 'dom'],
  types: ['node'],
  skipLibCheck: false,
  outDir: 'out',
};

/** A consumer project in a temporary folder, with the package installed as an app would have it. */
let project;
let generated;

before(async () => {
  project = await mkdtemp(join(tmpdir(), 'bridge-typegen-'));
  const modules = join(project, 'node_modules');
  await mkdir(join(modules, '@bridge-rpc'), { recursive: true });
  const link = process.platform === 'win32' ? 'junction' : 'dir';
  await symlink(packageRoot, join(modules, '@bridge-rpc', 'client'), link);
  await symlink(join(packageRoot, 'node_modules', '@types'), join(modules, '@types'), link);
  await writeFile(join(project, 'package.json'), JSON.stringify({ type: 'module', private: true }));
  await writeFile(join(project, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ['ok.ts'] }));
  await writeFile(join(project, 'tsconfig.bad.json'), JSON.stringify({ extends: './tsconfig.json', compilerOptions: { noEmit: true }, files: ['bad.ts'] }));
  for (const name of ['ok.ts', 'bad.ts']) await copyFile(join(fixtures, name), join(project, name));
  const types = await run(pythonCommand(), ['-m', 'bridge', 'types', 'notes_app:app', '--no-plugins', '--window'], { cwd: fixtures });
  assert.equal(types.code, 0, types.stderr);
  generated = types.stdout;
  await writeFile(join(project, 'bridge-api.d.ts'), generated);
});

after(async () => {
  if (project) await rm(project, { recursive: true, force: true });
});

test('bridge types writes the API map and the window.bridge declaration', () => {
  assert.match(generated, /^export interface Api \{\n {2}methods: ApiMethods;\n {2}events: ApiEvents;\n\}$/m);
  assert.match(generated, /^ {2}"notes\.export": \{\n {4}params: \{\n {6}prefix: string;\n {6}count\?: number;\n {4}\};\n {4}positional: \[prefix: string, count\?: number\];\n/m);
  assert.match(generated, /^ {4}item: Tag;$/m);
  assert.match(generated, /^ {2}"clock\.ticked": Tick;$/m, 'a plugin event is prefixed with its namespace');
  assert.match(generated, /^import type \{ RendererBridge \} from "@bridge-rpc\/client\/electron\/preload";$/m);
  assert.match(generated, /^ {4}bridge: RendererBridge<Api>;$/m);
});

test('a consumer of the API map compiles under tsc --strict, and its JavaScript runs against the app', async () => {
  const compiled = await run(process.execPath, [tsc, '--project', 'tsconfig.json', '--pretty', 'false'], { cwd: project });
  assert.equal(compiled.output, '', `tsc reported:\n${compiled.output}`);
  assert.equal(compiled.code, 0);
  const ran = await run(process.execPath, [join(project, 'out', 'ok.js')], {
    cwd: project,
    env: { ...env, TYPEGEN_PYTHON: pythonCommand(), TYPEGEN_APP_DIR: fixtures },
  });
  assert.equal(ran.code, 0, ran.output);
});

test('each misuse of the API map is the compile error marked on its line, and nothing else is', async () => {
  const source = await readFile(join(project, 'bad.ts'), 'utf8');
  const expected = new Map();
  source.split('\n').forEach((line, i) => {
    const marker = / \/\/ error (TS\d+): (.+)$/.exec(line);
    if (marker) expected.set(i + 1, { code: marker[1], text: marker[2] });
  });
  assert.ok(expected.size >= 20, 'the markers were not found');

  const checked = await run(process.execPath, [tsc, '--project', 'tsconfig.bad.json', '--pretty', 'false'], { cwd: project });
  assert.notEqual(checked.code, 0);
  const found = new Map(); // line -> [{ code, message }]
  let last;
  for (const line of checked.stdout.split('\n')) {
    const diagnostic = /^bad\.ts\((\d+),\d+\): error (TS\d+): (.*)$/.exec(line);
    if (diagnostic) {
      last = { code: diagnostic[2], message: diagnostic[3] };
      const number = Number(diagnostic[1]);
      found.set(number, [...(found.get(number) ?? []), last]);
    } else if (line.startsWith(' ') && last) {
      last.message += `\n${line.trim()}`;
    } else if (line.trim()) {
      assert.fail(`unexpected tsc output: ${line}`);
    }
  }
  for (const [number, { code, text }] of expected) {
    const diagnostics = found.get(number) ?? [];
    assert.ok(
      diagnostics.some((d) => d.code === code && d.message.includes(text)),
      `bad.ts:${number}: expected ${code} containing ${text}, got ${JSON.stringify(diagnostics)}`,
    );
  }
  const unexpected = [...found.keys()].filter((number) => !expected.has(number));
  assert.deepEqual(unexpected.map((number) => [number, found.get(number)]), [], 'diagnostics on unmarked lines');
});
