// The WebSocket mux (wsmux.js) against docs/PROTOCOL.md §2.5, over a fake
// WebSocket the test plays the relay through: node 20 has no WebSocket
// client, and the browser test drives the real one against a real relay.
// Run: node --test web/static/wsmux.test.mjs

import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { FakeWS, hex } from './fakews.mjs';
import * as wire from './wire.js';
import { CLOSE_BASE, MAX_FRAME_DATA, StreamError, WebSocketSession, appendVarint, encodeFrame, parseFrame, parseVarint } from './wsmux.js';

const opened = async (opts = {}) => {
  const s = new WebSocketSession('wss://relay.test/connect', { WebSocket: FakeWS, keepAliveMs: 0, ...opts });
  const ws = FakeWS.last;
  ws.open();
  await s.ready;
  return { s, ws };
};

const read = async (readable) => {
  const chunks = [];
  for await (const c of readable) chunks.push(...c);
  return Uint8Array.from(chunks);
};

test('varints: RFC 9000 §16 examples, and every length round trips', () => {
  for (const [h, v] of [['25', 37], ['7bbd', 15293], ['9d7f3e7d', 494878333]]) {
    assert.deepEqual(parseVarint(hex(h), 0), [v, h.length / 2]);
    assert.deepEqual(Uint8Array.from(appendVarint([], v)), hex(h));
  }
  for (const v of [0, 63, 64, 16383, 16384, 2 ** 30 - 1, 2 ** 30, 2 ** 40 + 5, Number.MAX_SAFE_INTEGER]) {
    const b = Uint8Array.from(appendVarint([], v));
    assert.deepEqual(parseVarint(b, 0), [v, b.length], `varint ${v}`);
  }
  assert.equal(parseVarint(hex('9d7f3e'), 0), null, 'a varint cut short');
});

test('frames match the examples of PROTOCOL.md §2.5', () => {
  const login = wire.encodeLogin({ version: 1, token: 'q3Jt0bX7yVw2ZkP9dLm4HsA1eRfGuN8cTiOoEp5KxYz', agent: 'esp32/1.0' });
  const m = encodeFrame(0x00, 0, login);
  assert.equal(m.length, 62);
  assert.deepEqual(m.subarray(0, 2), hex('00 00'));
  assert.deepEqual(parseFrame(m), { type: 0x00, id: 0, data: login });

  const msg = wire.encodeMessage({ mode: 'notify', body: '{"text":"Hi"}' }, 1);
  assert.equal(msg.length, 25);
  const relayMsg = encodeFrame(0x01, 1, msg);
  assert.equal(relayMsg.length, 27);
  assert.deepEqual(relayMsg.subarray(0, 7), hex('01 01 10 00 00 00 14'));

  const reply = encodeFrame(0x01, 1, wire.encodeReply({ status: 200, body: new TextEncoder().encode('{}') }));
  assert.deepEqual(reply, hex('01 01 11 00 00 00 04 00 c8 7b 7d'));
  assert.deepEqual(parseFrame(hex('02 09 01')), { type: 0x02, id: 9, code: 1 });
  assert.equal(CLOSE_BASE + wire.CloseReplaced, 0x0fa3);

  for (const bad of ['', '00', '02 09', '02 09 01 00', '02 09 c0 00 00 01 00 00 00 00', '07 00']) {
    assert.throws(() => parseFrame(hex(bad)), /malformed|unknown frame type/, `frame "${bad}"`);
  }
});

test('a session: the control stream, a message stream, its reply', async () => {
  const { s, ws } = await opened();
  assert.equal(ws.url, 'wss://relay.test/connect');
  assert.equal(ws.binaryType, 'arraybuffer');

  const control = await s.createBidirectionalStream();
  const cw = control.writable.getWriter();
  await cw.write(Uint8Array.of(1, 2, 3));
  assert.deepEqual(await ws.next(), { type: 0x00, id: 0, data: Uint8Array.of(1, 2, 3) });
  ws.deliver(encodeFrame(0x00, 0, Uint8Array.of(9)));
  const cr = control.readable.getReader();
  assert.deepEqual((await cr.read()).value, Uint8Array.of(9));

  // The relay's first stream, split over two frames, then FIN.
  ws.deliver(encodeFrame(0x00, 1, Uint8Array.of(4, 5)));
  ws.deliver(encodeFrame(0x01, 1, Uint8Array.of(6)));
  const incoming = s.incomingBidirectionalStreams.getReader();
  const { value: m } = await incoming.read();
  assert.deepEqual(await read(m.readable), Uint8Array.of(4, 5, 6));
  const mw = m.writable.getWriter();
  await mw.write(Uint8Array.of(7));
  await mw.close();
  assert.deepEqual(await ws.next(), { type: 0x00, id: 1, data: Uint8Array.of(7) });
  assert.deepEqual(await ws.next(), { type: 0x01, id: 1, data: new Uint8Array(0) });

  // A late frame for the stream that has ended is ignored; the next one opens 5.
  ws.deliver(encodeFrame(0x02, 1, Uint8Array.of(1)));
  ws.deliver(encodeFrame(0x01, 5, Uint8Array.of(8)));
  assert.deepEqual(await read((await incoming.read()).value.readable), Uint8Array.of(8));
  assert.equal(ws.closedWith, null);

  // A large write goes out in frames of at most 16 KiB.
  await cw.write(new Uint8Array(MAX_FRAME_DATA * 2 + 1));
  const sizes = [];
  for (let i = 0; i < 3; i++) sizes.push((await ws.next()).data.length);
  assert.deepEqual(sizes, [MAX_FRAME_DATA, MAX_FRAME_DATA, 1]);
});

test('a RESET from the relay fails both sides of the stream with its code', async () => {
  const { s, ws } = await opened();
  ws.deliver(encodeFrame(0x00, 1, Uint8Array.of(1)));
  const { value: m } = await s.incomingBidirectionalStreams.getReader().read();
  const r = m.readable.getReader();
  await r.read();
  ws.deliver(hex('02 01 03'));
  await assert.rejects(r.read(), (err) => err instanceof StreamError && err.code === wire.StreamTooLarge && err.remote);
  await assert.rejects(m.writable.getWriter().write(Uint8Array.of(1)), StreamError);
  assert.equal(ws.unread, 0, 'nothing sent back for a reset stream');
});

test('streams over the limit are reset with 0x1 as they open', async () => {
  const { s, ws } = await opened({ maxIncomingStreams: 1 });
  ws.deliver(encodeFrame(0x00, 1, Uint8Array.of(1)));
  ws.deliver(encodeFrame(0x00, 5, Uint8Array.of(2)));
  assert.deepEqual(await ws.next(), { type: 0x02, id: 5, code: wire.StreamCancelled });
  ws.deliver(encodeFrame(0x01, 5, Uint8Array.of(3))); // crossed the RESET: ignored
  // Once stream 1 has ended both ways, there is room again.
  const incoming = s.incomingBidirectionalStreams.getReader();
  const { value: m } = await incoming.read();
  ws.deliver(encodeFrame(0x01, 1, new Uint8Array(0)));
  await read(m.readable);
  await m.writable.getWriter().close();
  await ws.next(); // its FIN
  ws.deliver(encodeFrame(0x01, 9, Uint8Array.of(4)));
  assert.deepEqual(await read((await incoming.read()).value.readable), Uint8Array.of(4));
  assert.equal(ws.closedWith, null);
});

test('protocol errors close the connection with 4001', async (t) => {
  const cases = [
    ['a text message', (ws) => ws.deliver('hello'), 'text message'],
    ['an unknown frame type', (ws) => ws.deliver(hex('07 01')), 'unknown frame type 0x7'],
    ['a stream opened out of order', (ws) => ws.deliver(hex('00 05 01')), 'stream 5 opened out of order (next is 1)'],
    ['a frame for a stream the page never opened', (ws) => ws.deliver(hex('00 04 01')), 'frame for stream 4, which this side never opened'],
    ['a unidirectional ID of the page\'s parity', (ws) => ws.deliver(hex('00 02 01')), 'frame for stream 2, a unidirectional ID that no side opens'],
    [
      'a unidirectional ID of the relay\'s, after its streams passed it',
      (ws) => {
        ws.deliver(hex('01 01 01'));
        ws.deliver(hex('01 05 01'));
        ws.deliver(hex('00 03 01'));
      },
      'frame for stream 3, a unidirectional ID that no side opens',
    ],
    [
      'data after FIN',
      (ws) => {
        ws.deliver(hex('01 01 01'));
        ws.deliver(hex('00 01 02'));
      },
      'data on stream 1 after its end',
    ],
    ['over the stream buffer', (ws) => ws.deliver(encodeFrame(0x00, 1, new Uint8Array(11))), 'stream 1 over its buffer'],
  ];
  for (const [name, breakIt, reason] of cases) {
    await t.test(name, async () => {
      const { s, ws } = await opened({ maxStreamBuffer: 10 });
      breakIt(ws);
      assert.deepEqual(ws.closedWith, { code: CLOSE_BASE + wire.CloseProtocol, reason });
      assert.deepEqual(await s.closed, { closeCode: wire.CloseProtocol, reason });
    });
  }
});

test('closes: the relay\'s codes, a lost connection, the page\'s own', async () => {
  let { s, ws } = await opened();
  const control = await s.createBidirectionalStream();
  ws.relayClose(CLOSE_BASE + wire.CloseReplaced, 'replaced');
  assert.deepEqual(await s.closed, { closeCode: wire.CloseReplaced, reason: 'replaced' });
  await assert.rejects(control.writable.getWriter().write(Uint8Array.of(1)), /session closed \(0x3: replaced\)/);
  await assert.rejects(s.createBidirectionalStream(), /session closed/);
  assert.equal((await s.incomingBidirectionalStreams.getReader().read()).done, true);

  ({ s, ws } = await opened());
  ws.relayClose(1006, '');
  await assert.rejects(s.closed, /connection lost \(WebSocket close 1006\)/);

  // Refused before it opened: ready rejects.
  s = new WebSocketSession('wss://relay.test/connect', { WebSocket: FakeWS });
  FakeWS.last.relayClose(1006, '');
  await assert.rejects(s.ready, /connection lost/);

  // The page's close: 4000 + code, the reason cut to WebSocket's 123 bytes.
  ({ s, ws } = await opened());
  s.close({ closeCode: wire.CloseGoingAway, reason: 'é'.repeat(100) });
  assert.equal(ws.closedWith.code, 4004);
  assert.equal(ws.closedWith.reason, 'é'.repeat(61));
  assert.equal((await s.closed).closeCode, wire.CloseGoingAway);
});

test('keep-alive: an empty STREAM frame on the control stream until it ends', async () => {
  mock.timers.enable({ apis: ['setInterval'] });
  try {
    const s = new WebSocketSession('wss://relay.test/connect', { WebSocket: FakeWS, keepAliveMs: 20_000 });
    const ws = FakeWS.last;
    ws.open();
    mock.timers.tick(20_000);
    assert.equal(ws.unread, 0, 'no ping before the control stream opens');
    const control = await s.createBidirectionalStream();
    mock.timers.tick(19_999);
    assert.equal(ws.unread, 0);
    mock.timers.tick(1);
    assert.deepEqual(await ws.next(), { type: 0x00, id: 0, data: new Uint8Array(0) });
    await control.writable.getWriter().close(); // after GOAWAY: no more data may follow
    assert.equal((await ws.next()).type, 0x01);
    mock.timers.tick(60_000);
    assert.equal(ws.unread, 0, 'a ping after the control stream ended');
    s.close();
  } finally {
    mock.timers.reset();
  }
});
