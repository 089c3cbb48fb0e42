// examples/electron with its renderer in real headless Chromium, every file unchanged: main.mjs
// imported as it is (its spawnSidecar() starts the real host with bridge.toml, its
// exposeToRenderers() and allowlist serve the page), preload.mjs bundled with esbuild as the
// example's README says, index.html loaded from file:// as loadFile() does, with renderer.js and
// the terminal-pane.js module (xterm.js from the example's node_modules, as npm would install it).
// Electron's main-process API is test-support/chromium.mjs (Playwright pages as windows,
// exposeBinding as IPC); the contextBridge copying and process isolation Chromium cannot show stay
// with the stand-in (electron.test.mjs). Screenshot: test-artifacts/electron-chromium.png.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { register } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { processExists, repoRoot } from '../test-support/host.mjs';
import { partMissing } from '../test-support/parts.mjs';

const skip = partMissing('chromium');
if (!skip) register('../test-support/chromium/loader.mjs', import.meta.url);

const EXAMPLE = join(repoRoot, 'examples', 'electron');
const SCREENSHOT = join(repoRoot, 'test-artifacts', 'electron-chromium.png');

describe('examples/electron in real Chromium, with the real host', { skip, timeout: 30_000 }, () => {
  let browser;
  let electron;
  let main;
  let window;
  let page;
  let client;

  /** Wait until the page's #log has a line matching `pattern`; returns the whole log. */
  async function logShows(pattern) {
    const source = pattern instanceof RegExp ? pattern.source : pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    await page.waitForFunction((re) => new RegExp(`^${re}$`, 'm').test(document.getElementById('log').textContent), source, {
      timeout: 10_000,
    });
    return page.textContent('#log');
  }

  before(async () => {
    const { installChromiumElectron, installedPackages, launchChromium } = await import('../test-support/chromium.mjs');
    browser = await launchChromium();
    electron = installChromiumElectron(browser, { packages: installedPackages(EXAMPLE) });
    const opened = electron.nextWindow();
    process.env.BRIDGE_LOG_LEVEL = 'warning';
    main = await import('../../examples/electron/main.mjs');
    client = await main.sidecar;
    ({ window, page } = await opened);
  });

  after(async () => {
    if (client && client.process.exitCode === null && client.process.signalCode === null) client.process.kill('SIGKILL');
    await browser?.close();
    electron?.uninstall();
  });

  test('the page loaded from file:// under its CSP and got a frozen window.bridge from the bundled preload', async () => {
    assert.match(page.url(), /^file:\/\/.*\/examples\/electron\/index\.html$/);
    const bridge = await page.evaluate(() => {
      let assigned;
      try {
        window.bridge = null;
        assigned = 'no error';
      } catch (error) {
        assigned = error.name;
      }
      return {
        keys: Object.keys(window.bridge).sort(),
        frozen: Object.isFrozen(window.bridge),
        assigned,
        stillThere: typeof window.bridge.call,
        errorClass: new window.bridge.RpcError(1, 'x') instanceof Error,
      };
    });
    assert.deepEqual(bridge, {
      keys: ['CallCancelledError', 'CallTimeoutError', 'ConnectionClosedError', 'RpcError', 'call', 'on', 'stream'],
      frozen: true,
      assigned: 'no error', // a classic script is sloppy mode: the write is ignored, not thrown
      stillThere: 'function',
      errorClass: true,
    });
    assert.equal(await page.textContent('#log'), '');
  });

  test('every button of the example, as a person clicks them', async () => {
    await page.click('#ping');
    await logShows('system.ping -> "pong"');
    await page.click('#add');
    await logShows('demo.add -> 5');
    await page.click('#count');
    await logShows('demo.count -> 5');
    assert.equal(await page.textContent('#progress'), '5/5', 'every progress value came before the result');
    await page.click('#emit');
    await logShows('demo.emit -> true');
    await page.click('#fail');
    await logShows(/demo\.fail failed: RpcError 1001: this call fails on purpose \{"hint":".+"\}/);
    await page.click('#forbidden');
    await logShows(/rpc\.discover failed: RpcError -32601: .*/);
    await page.click('#sleep');
    await page.click('#cancel');
    const log = await logShows('demo.sleep failed: AbortError: call to demo.sleep was cancelled');

    const lines = log.trimEnd().split('\n');
    assert.deepEqual(lines.slice(0, 5), [
      'system.ping -> "pong"',
      'demo.add -> 5',
      'demo.count -> 5',
      'event demo.tick {"tick":1}', // the host's notification came before its reply, and so it shows
      'demo.emit -> true',
    ]);
    assert.match(lines[5], /^demo\.fail failed: RpcError 1001: this call fails on purpose \{"hint":"[^"]+"\}$/);
    assert.match(lines[6], /^rpc\.discover failed: RpcError -32601: method "rpc\.discover" is not allowed .*\{"method":"rpc\.discover","reason":"not allowed"\}$/);
    assert.equal(lines[7], 'demo.sleep failed: AbortError: call to demo.sleep was cancelled');
    assert.equal(lines.length, 8);
  });

  test('the terminal pane: bash through attachTerminal in xterm.js, typed into, interrupted, exited', async () => {
    /** Wait until a row of xterm's DOM renderer reads exactly `text` (trailing blanks aside). */
    const rowShows = (text) =>
      page.waitForFunction(
        (wanted) => [...document.querySelectorAll('#terminal .xterm-rows > div')].some((row) => row.textContent.replace(/\u00a0/g, ' ').trimEnd() === wanted),
        text,
        { timeout: 10_000 },
      );
    await page.click('#terminal-open');
    await page.waitForFunction(() => /^bash, pid \d+$/.test(document.getElementById('terminal-status').textContent), null, { timeout: 10_000 });
    // bash's prompt (PS1 ends in "$ " or "# "), so what is typed is not typeahead
    await page.waitForFunction(() => [...document.querySelectorAll('#terminal .xterm-rows > div')].some((row) => /[$#]$/.test(row.textContent.trimEnd())), null, {
      timeout: 10_000,
    });
    await page.click('#terminal .xterm');
    await page.keyboard.type('echo $((6 * 7))');
    await page.keyboard.press('Enter');
    await rowShows('42'); // bash's answer, not the echo of the command line

    await page.keyboard.type('sleep 30');
    await page.keyboard.press('Enter');
    await page.click('#terminal-interrupt');
    await page.click('#terminal .xterm');
    await page.keyboard.type('echo after-$((1 + 1))');
    await page.keyboard.press('Enter');
    await rowShows('after-2'); // within the wait: the sleep was interrupted

    mkdirSync(join(repoRoot, 'test-artifacts'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    await page.keyboard.type('exit');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.getElementById('terminal-status').textContent === 'exited (0)', null, { timeout: 10_000 });
  });

  test('the cancel reached the host: demo.sleep ended there with -32800, nothing left in flight', async () => {
    // The page rejects at once on abort; the host's reply to $/cancelRequest comes a moment later.
    let sleep;
    for (let attempt = 0; attempt < 200; attempt++) {
      sleep = (await client.call('rpc.metrics')).methods['demo.sleep'];
      if (sleep.inflight === 0) break;
    }
    assert.deepEqual(sleep.errorsByCode, { '-32800': 1 });
    assert.equal(sleep.inflight, 0);
    assert.equal(sleep.calls, 1);
  });

  test("what Chromium's structured clone refuses fails in the page and never reaches the host", async () => {
    const before = (await client.call('rpc.metrics')).methods['demo.echo'].calls;
    const message = await page.evaluate(() => window.bridge.call('demo.echo', { value: () => 1 }).then(String, (error) => `${error.name}: ${error.message}`));
    assert.match(message, /^Error: bridge: could not call demo\.echo: .*could not be cloned/);
    assert.equal((await client.call('rpc.metrics')).methods['demo.echo'].calls, before);
  });

  test("a reload runs the preload again: main drops the old page's calls (the host cancels them), the new page calls", async () => {
    const sleeps = async () => (await client.call('rpc.metrics')).methods['demo.sleep'];
    const cancelledBefore = (await sleeps()).errorsByCode['-32800'];
    await page.evaluate(() => {
      window.bridge.call('demo.sleep', { seconds: 30 }).catch(() => {});
    });
    for (let attempt = 0; attempt < 200 && (await sleeps()).inflight === 0; attempt++);
    assert.equal((await sleeps()).inflight, 1, 'the sleep reached the host');
    await page.reload();
    let after;
    for (let attempt = 0; attempt < 200; attempt++) {
      after = await sleeps();
      if (after.inflight === 0) break;
    }
    assert.equal(after.inflight, 0);
    assert.equal(after.errorsByCode['-32800'], cancelledBefore + 1, "the old page's sleep was cancelled on the host");
    assert.equal(await page.textContent('#log'), '');
    await page.click('#ping');
    await logShows('system.ping -> "pong"');
  });

  test("quitting closes the window, then the host, which exits by itself; the page logged no error", async () => {
    const pid = client.process.pid;
    const problems = window.webContents.problems;
    const quitting = Date.now();
    electron.app.quit();
    assert.equal(await electron.app.exited, 0);
    assert.equal(window.isDestroyed(), true);
    assert.equal(client.process.exitCode, 0, 'the host exited by itself');
    assert.equal(processExists(pid), false);
    // Had the cancelled sleep still been running, the host would have waited out its 5 s grace.
    assert.ok(Date.now() - quitting < 4000, `quitting took ${Date.now() - quitting} ms`);
    assert.deepEqual(problems, []);
  });
});
