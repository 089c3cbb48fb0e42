// A transport that records what the client sends; the test plays the host (receive()).

/** Records what the client sends; the test plays the host. */
export class FakeTransport {
  sent = [];
  #listeners = new Set();
  send(message) {
    this.sent.push(JSON.parse(JSON.stringify(message)));
  }
  onMessage(listener) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  onClose() {
    return () => {};
  }
  close() {}
  receive(message) {
    for (const listener of this.#listeners) listener(message);
  }
  chunk(id, seq, items, done) {
    this.receive({ jsonrpc: '2.0', method: '$/stream', params: { id, seq, items, done } });
  }
}
