// Just enough of a page's DOM for the examples' scripts: elements found by id, click events,
// textContent, value and disabled; tests wait on text changes instead of sleeping.

export class FakeElement extends EventTarget {
  #text = '';
  #watchers = new Set();
  disabled = false;
  value = '';

  constructor(id, text = '') {
    super();
    this.id = id;
    this.#text = text;
  }

  get textContent() {
    return this.#text;
  }

  set textContent(text) {
    this.#text = String(text);
    for (const watcher of [...this.#watchers]) watcher();
  }

  click() {
    if (!this.disabled) this.dispatchEvent(new Event('click'));
  }

  /** Resolve once the text contains `predicate` (a string, RegExp or function); rejects after `ms`. */
  waitForText(predicate, ms = 10_000) {
    const test =
      typeof predicate === 'string' ? (text) => text.includes(predicate) : predicate instanceof RegExp ? (text) => predicate.test(text) : predicate;
    if (test(this.#text)) return Promise.resolve(this.#text);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#watchers.delete(watcher);
        reject(new Error(`#${this.id} never matched ${predicate}; its text is:\n${this.#text}`));
      }, ms);
      const watcher = () => {
        if (!test(this.#text)) return;
        clearTimeout(timer);
        this.#watchers.delete(watcher);
        resolve(this.#text);
      };
      this.#watchers.add(watcher);
    });
  }
}

export class FakeDocument extends EventTarget {
  #elements = new Map();

  /** Elements are made for every `id="..."` in `html`, with the tag's inline text if any. */
  constructor(html = '') {
    super();
    for (const match of html.matchAll(/<(\w+)[^>]*\sid="([^"]+)"[^>]*>([^<]*)/g)) {
      this.#elements.set(match[2], new FakeElement(match[2], match[3]));
    }
  }

  getElementById(id) {
    return this.#elements.get(id) ?? null;
  }

  querySelector(selector) {
    return selector.startsWith('#') ? this.getElementById(selector.slice(1)) : null;
  }

  /** The `src` of each `<script>` in `html`, with its type. */
  static scripts(html) {
    return [...html.matchAll(/<script\b([^>]*)>/g)].map(([, attributes]) => ({
      src: /\ssrc="([^"]+)"/.exec(attributes)?.[1],
      type: /\stype="([^"]+)"/.exec(attributes)?.[1] ?? 'classic',
    }));
  }
}
