// The webview side: start the bridge host as a Tauri sidecar and call it from the page.
// `program` is the externalBin entry in src-tauri/tauri.conf.json, and the args must be the
// ones src-tauri/capabilities/default.json allows.

import { Command } from '@tauri-apps/plugin-shell';
import { createTauriSidecar, RpcError } from '@bridge-rpc/client/tauri';

const log = document.getElementById('log');
const progress = document.getElementById('progress');
const show = (line) => {
  log.textContent += `${line}\n`;
};

/** Resolves with the connected client once the host has sent $/ready. */
export const bridge = createTauriSidecar({
  Command,
  program: 'binaries/bridge-host',
  args: ['serve'],
  onStderr: (line) => console.debug('[bridge]', line),
});

bridge.then(
  (client) => {
    show(`host ready: ${client.ready.name} ${client.ready.version}`);
    client.on('demo.tick', (params) => show(`event demo.tick ${JSON.stringify(params)}`));
  },
  (error) => show(`could not start the host: ${error.message}`),
);

function describe(error) {
  if (error instanceof RpcError) {
    return `RpcError ${error.code}: ${error.message}${error.data === undefined ? '' : ` ${JSON.stringify(error.data)}`}`;
  }
  return `${error.name}: ${error.message}`;
}

async function run(label, call) {
  try {
    show(`${label} -> ${JSON.stringify(await call(await bridge))}`);
  } catch (error) {
    show(`${label} failed: ${describe(error)}`);
  }
}

const button = (id, onClick) => document.getElementById(id).addEventListener('click', onClick);

button('ping', () => run('system.ping', (client) => client.call('system.ping')));
button('add', () => run('demo.add', (client) => client.call('demo.add', { a: 2, b: 3 })));
button('count', () =>
  run('demo.count', (client) =>
    client.call('demo.count', { n: 5, delay: 0.05 }, { onProgress: ({ done, total }) => (progress.textContent = `${done}/${total}`) }),
  ),
);

let sleeping = null;
button('sleep', () => {
  sleeping = new AbortController();
  const { signal } = sleeping;
  run('demo.sleep', (client) => client.call('demo.sleep', { seconds: 30 }, { signal }));
});
button('cancel', () => sleeping?.abort());

button('fail', () => run('demo.fail', (client) => client.call('demo.fail')));

let ticks = 0;
button('emit', () => run('demo.emit', (client) => client.call('demo.emit', { event: 'demo.tick', payload: { tick: ++ticks } })));

// The plugin kills its children when the app exits, not when the page goes away (a reload
// in development would leave the old host running), so the page stops its host itself.
window.addEventListener('pagehide', () => {
  bridge.then((client) => client.close()).catch(() => {});
});
