// A fake WebSocket for the node tests of wsmux.js and device.js (node 20
// has no WebSocket client). Not a test file itself, and not served.

import assert from 'node:assert/strict';
import { parseFrame } from './wsmux.js';

/** hex parses the doc's notation: "01 00 | 2b" with spaces and bars. */
export const hex = (s) => Uint8Array.from(s.replace(/[\s|]/g, '').match(/../g) ?? [], (h) => parseInt(h, 16));

/**
 * FakeWS is the page's WebSocket. The test is the relay: open() accepts the
 * upgrade, deliver() sends a binary message, next() awaits what the page
 * sent, relayClose() is the relay's close frame or a lost connection.
 */
export class FakeWS {
  static last = null;
  readyState = 0;
  closedWith = null; // the page's close(code, reason)
  #sent = [];
  #waiting = [];

  constructor(url) {
    this.url = url;
    FakeWS.last = this;
  }

  open() {
    this.readyState = 1;
    this.onopen();
  }

  send(b) {
    assert.equal(this.readyState, 1, 'send on a WebSocket that is not open');
    assert.ok(b instanceof Uint8Array);
    const w = this.#waiting.shift();
    if (w) w(b);
    else this.#sent.push(b);
  }

  /** next resolves to the next message the page sends, parsed. */
  next() {
    const b = this.#sent.shift();
    if (b) return Promise.resolve(parseFrame(b));
    return new Promise((resolve) => this.#waiting.push((m) => resolve(parseFrame(m))));
  }

  get unread() {
    return this.#sent.length;
  }

  deliver(bytes) {
    const copy = Uint8Array.from(bytes);
    this.onmessage({ data: typeof bytes === 'string' ? bytes : copy.buffer });
  }

  close(code, reason) {
    assert.ok(code === 1000 || (code >= 3000 && code < 5000), `close code ${code} is not one a page may send`);
    assert.ok(new TextEncoder().encode(reason).length <= 123, 'close reason over 123 bytes');
    if (this.readyState === 3) return;
    this.closedWith = { code, reason };
    this.readyState = 2;
  }

  relayClose(code, reason = '') {
    this.readyState = 3;
    this.onclose({ code, reason });
  }
}

