// The page's terminal pane: a shell on the host's `terminal` plugin, shown in xterm.js.
// attachTerminal() does the wiring (keystrokes batched into terminal.write, output written with
// its credit granted in xterm's write callback, the restore first, resizes); the fit addon sizes
// the terminal to its box. Only window.bridge is used: the page has no Electron and no IPC.

import { Terminal } from './node_modules/@xterm/xterm/lib/xterm.mjs';
import { FitAddon } from './node_modules/@xterm/addon-fit/lib/addon-fit.mjs';
import { attachTerminal } from './node_modules/@bridge-rpc/client/src/terminal.js';

const { bridge } = window;
const status = document.getElementById('terminal-status');
const term = new Terminal({ convertEol: false, cursorBlink: true, scrollback: 5000 });
const fit = new FitAddon();
term.loadAddon(fit);
term.open(document.getElementById('terminal'));
fit.fit();
addEventListener('resize', () => fit.fit());

let attached = null;
let terminalId = null;

async function open() {
  if (attached) return;
  status.textContent = 'starting';
  try {
    // The host starts only what bridge.toml's [plugins.terminal] commands allow.
    const { id, pid } = await bridge.call('terminal.create', { command: 'bash', rows: term.rows, cols: term.cols, name: 'pane' });
    terminalId = id;
    status.textContent = `bash, pid ${pid}`;
    attached = attachTerminal(bridge, term, {
      id,
      onExit: ({ exit_code, signal }) => {
        status.textContent = `exited (${signal ?? exit_code})`;
        attached?.dispose();
        attached = null;
      },
      onError: (error) => (status.textContent = `error: ${error.message}`),
    });
    term.focus();
  } catch (error) {
    status.textContent = `could not start: ${error.message}`;
  }
}

document.getElementById('terminal-open').addEventListener('click', open);
document.getElementById('terminal-interrupt').addEventListener('click', () => {
  if (terminalId) bridge.call('terminal.signal', { id: terminalId, signal: 'interrupt' }).catch(() => {});
});
