// The page's script. It knows nothing of Electron or IPC: only window.bridge from preload.mjs.
// A classic script wrapped in a function: `const bridge` at the top level of a script would
// clash with the read-only window.bridge.

(() => {
  'use strict';
  const { bridge } = window;
  const log = document.getElementById('log');
  const progress = document.getElementById('progress');
  const show = (line) => {
    log.textContent += `${line}\n`;
  };

  function describe(error) {
    if (error instanceof bridge.RpcError) {
      return `RpcError ${error.code}: ${error.message}${error.data === undefined ? '' : ` ${JSON.stringify(error.data)}`}`;
    }
    return `${error.name}: ${error.message}`;
  }

  async function run(label, call) {
    try {
      show(`${label} -> ${JSON.stringify(await call())}`);
    } catch (error) {
      show(`${label} failed: ${describe(error)}`);
    }
  }

  const button = (id, onClick) => document.getElementById(id).addEventListener('click', onClick);

  button('ping', () => run('system.ping', () => bridge.call('system.ping')));
  button('add', () => run('demo.add', () => bridge.call('demo.add', { a: 2, b: 3 })));
  button('count', () =>
    run('demo.count', () =>
      bridge.call('demo.count', { n: 5, delay: 0.05 }, { onProgress: ({ done, total }) => (progress.textContent = `${done}/${total}`) }),
    ),
  );

  let sleeping = null;
  button('sleep', () => {
    sleeping = new AbortController();
    run('demo.sleep', () => bridge.call('demo.sleep', { seconds: 30 }, { signal: sleeping.signal }));
  });
  button('cancel', () => sleeping?.abort());

  button('fail', () => run('demo.fail', () => bridge.call('demo.fail')));
  button('forbidden', () => run('rpc.discover', () => bridge.call('rpc.discover')));

  let ticks = 0;
  bridge.on('demo.tick', (params) => show(`event demo.tick ${JSON.stringify(params)}`));
  button('emit', () => run('demo.emit', () => bridge.call('demo.emit', { event: 'demo.tick', payload: { tick: ++ticks } })));
})();
