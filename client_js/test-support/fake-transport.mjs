// A transport that records what the client sends; the test plays the host (receive(), chunk(),
// disconnect()).

/** Records what the client sends; the test plays the host. */
export class FakeTransport {
  sent = [];
  #listeners = new Set();
  #closeListeners = new Set();
  send(message) {
    this.sent.push(JSON.parse(JSON.stringify(message)));
  }
  onMessage(listener) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  onClose(listener) {
    this.#closeListeners.add(listener);
    return () => this.#closeListeners.delete(listener);
  }
  close() {}
  receive(message) {
    for (const listener of this.#listeners) listener(message);
  }
  /** The connection is gone, with `error` saying why. */
  disconnect(error) {
    for (const listener of this.#closeListeners) listener(error);
  }
  /** A `$/stream` chunk for call `id`. */
  chunk(id, seq, items, done, total) {
    this.receive({ jsonrpc: '2.0', method: '$/stream', params: { id, seq, items, done, ...(total === undefined ? {} : { total }) } });
  }
  /** How many `$/stream/credit` the client sent for call `id`. */
  credits(id) {
    return this.sent.filter((m) => m.method === '$/stream/credit' && m.params.id === id).length;
  }
}
