// client_js as published: its version is the Python package's, its exports resolve, and the
// tarball `npm pack` makes holds exactly the files those exports need (no tests, no tooling).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const repo = join(root, '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

test('the version is the Python package\'s (pyproject.toml and bridge.__version__)', () => {
  const pyproject = readFileSync(join(repo, 'pyproject.toml'), 'utf8');
  const project = pyproject.slice(pyproject.indexOf('[project]'));
  const pyVersion = /^version\s*=\s*"([^"]+)"/m.exec(project)?.[1];
  const initVersion = /^__version__\s*=\s*"([^"]+)"/m.exec(readFileSync(join(repo, 'bridge', '_version.py'), 'utf8'))?.[1];
  assert.ok(pyVersion, 'pyproject.toml has a [project] version');
  assert.equal(pkg.version, pyVersion);
  assert.equal(initVersion, pyVersion);
});

const ENTRY_POINTS = ['.', './node', './electron/main', './electron/preload', './tauri'];

test('the exports map has core, node, electron main and preload, and tauri, each with types', () => {
  assert.equal(pkg.type, 'module');
  for (const entry of ENTRY_POINTS) {
    const target = pkg.exports[entry];
    assert.ok(target, `exports["${entry}"]`);
    assert.deepEqual(Object.keys(target), ['types', 'default'], `${entry}: types must come first`);
    assert.ok(existsSync(join(root, target.types)), target.types);
    assert.ok(existsSync(join(root, target.default)), target.default);
  }
  assert.equal(pkg.types, pkg.exports['.'].types);
  assert.equal(pkg.main, pkg.exports['.'].default);
  assert.deepEqual(pkg.dependencies ?? {}, {}, 'the client depends on nothing');
});

test('the exports load by their package names', async () => {
  const core = await import('@bridge-rpc/client');
  assert.equal(typeof core.RpcClient, 'function');
  assert.equal(typeof (await import('@bridge-rpc/client/node')).spawnSidecar, 'function');
  const tauri = await import('@bridge-rpc/client/tauri');
  assert.equal(typeof tauri.createTauriSidecar, 'function');
  assert.equal(typeof tauri.sidecarName, 'function');
});

/**
 * Every file reachable from `file` through relative imports (a `.js` import from a `.d.ts` is its
 * `.d.ts`), with the `.d.ts` beside each `.js`.
 */
function closure(file, seen = new Set()) {
  if (seen.has(file)) return seen;
  seen.add(file);
  const types = file.replace(/\.js$/, '.d.ts'); // an internal module's own declarations go along
  if (types !== file && existsSync(join(root, types))) closure(types, seen);
  const text = readFileSync(join(root, file), 'utf8');
  for (const [, spec] of text.matchAll(/(?:from|import)\s*\(?\s*['"](\.\.?\/[^'"]+)['"]/g)) {
    let target = normalize(join(dirname(file), spec));
    if (file.endsWith('.d.ts') && target.endsWith('.js')) target = target.replace(/\.js$/, '.d.ts');
    assert.ok(existsSync(join(root, target)), `${file} imports ${spec}, which is missing`);
    closure(relative(root, join(root, target)), seen);
  }
  return seen;
}

test('npm pack ships exactly what the exports need, and no tests', () => {
  const [report] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  const packed = report.files.map((f) => f.path).sort();
  const needed = new Set(['package.json', 'README.md']);
  for (const entry of ENTRY_POINTS) {
    for (const file of [pkg.exports[entry].types, pkg.exports[entry].default]) closure(normalize(file), needed);
  }
  assert.deepEqual(packed, [...needed].sort());
  assert.equal(report.name, '@bridge-rpc/client');
  assert.equal(report.version, pkg.version);
  assert.ok(!packed.some((f) => /(^|\/)(test|test-support|node_modules)\//.test(f)));
});

test('engines states the Node the client is tested on, and this Node satisfies it', () => {
  const floor = /^>=(\d+)$/.exec(pkg.engines?.node ?? '')?.[1];
  assert.ok(floor, `engines.node is ">=N": ${pkg.engines?.node}`);
  assert.ok(Number(process.versions.node.split('.')[0]) >= Number(floor), `Node ${process.versions.node} < ${floor}`);
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  assert.match(readme, new RegExp(`Node >= ${floor}\\b`), 'the README states the same floor');
});

test('the README\'s layout table names every source file', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const table = readme.slice(readme.indexOf('## Layout'), readme.indexOf('\n## ', readme.indexOf('## Layout') + 1));
  const listed = new Set([...table.matchAll(/`src\/([^`]+)`/g)].map((m) => m[1]));
  const files = readdirSync(join(root, 'src')).filter((name) => name.endsWith('.js') || name === 'api.d.ts');
  const missing = files.filter((name) => !listed.has(name));
  assert.deepEqual(missing, [], `the layout table lacks ${missing.join(', ')}`);
  assert.ok(listed.has('*.d.ts'), 'the declarations are described');
});
