// The device side of the protocol (device.js) against a scripted relay,
// over a fake WebTransport built from web streams: node has no WebTransport,
// and the browser test drives the real one. Run:
// node --test web/static/device.test.mjs

import assert from 'node:assert/strict';
import { afterEach, mock, test } from 'node:test';
import { AGENT, Device, backoff, base64ToBytes, dial } from './device.js';
import { FakeWS } from './fakews.mjs';
import { handleMessage } from './modes.js';
import * as wire from './wire.js';
import { CLOSE_BASE, encodeFrame } from './wsmux.js';

/** pipe is one direction of a stream: what one side writes, the other reads. */
const pipe = () => new TransformStream({}, { highWaterMark: 64 });

/**
 * FakeWT stands in for WebTransport. The test plays the relay through
 * relay(): the control stream the device opens, message streams it opens
 * towards the device, and the session close.
 */
class FakeWT {
  static sessions = [];

  constructor(url, options) {
    this.url = url;
    this.options = options;
    this.ready = Promise.resolve();
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.closeInfo = null;
    this.incomingBidirectionalStreams = new ReadableStream({
      start: (c) => {
        this.incoming = c;
      },
    });
    this.controlOpened = new Promise((resolve) => {
      this.openControl = resolve;
    });
    FakeWT.sessions.push(this);
  }

  async createBidirectionalStream() {
    const d2r = pipe();
    const r2d = pipe();
    this.controlWriter = r2d.writable.getWriter();
    const reader = d2r.readable.getReader();
    this.openControl({ frames: new wire.FrameReader(reader), reader, writer: this.controlWriter });
    return { readable: r2d.readable, writable: d2r.writable };
  }

  close(info) {
    if (this.closeInfo) return;
    this.closeInfo = info;
    try {
      this.incoming.close();
    } catch {}
    // As in a browser, a closed session errors its streams.
    this.controlWriter?.abort(new Error('session closed')).catch(() => {});
    this.resolveClosed(info);
  }

  /** relayClose is the relay closing the session. */
  relayClose(closeCode, reason) {
    this.close({ closeCode, reason });
  }

  /** send opens a message stream to the device with these bytes, then FIN; resolves to its REPLY. */
  async send(bytes, chunk = bytes.length) {
    const d2r = pipe();
    const r2d = pipe();
    this.incoming.enqueue({ readable: r2d.readable, writable: d2r.writable });
    const w = r2d.writable.getWriter();
    try {
      for (let i = 0; i < bytes.length; i += chunk) await w.write(bytes.slice(i, i + chunk));
      await w.close();
    } catch {
      // The device stopped reading (STOP_SENDING): it answers all the same.
    }
    const frames = new wire.FrameReader(d2r.readable.getReader());
    const f = await frames.readFrame(wire.MaxPayload);
    wire.expect(f.type, wire.FrameReply);
    assert.equal(await frames.atEnd(), true, 'FIN after REPLY');
    const r = wire.parseReply(f.payload);
    return { status: r.status, body: JSON.parse(new TextDecoder().decode(r.body)) };
  }
}

globalThis.WebTransport = FakeWT;
globalThis.fetch = async (url) => ({ ok: true, json: async () => ({ certHashes: ['AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8='] }), url });

const TOKEN = 'q3Jt0bX7yVw2ZkP9dLm4HsA1eRfGuN8cTiOoEp5KxYz';
const WELCOME = wire.encodeWelcome({ maxBody: 65536, maxInflight: 32, idleTimeout: 60 });

/** eventually polls cond for up to 3 s: no sleeps standing in for synchronisation. */
async function eventually(cond, what) {
  for (let i = 0; i < 300; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

afterEach(() => {
  // A refusal with bad_token ends a device's loop for good.
  for (const s of FakeWT.sessions) s.relayClose(wire.CloseRefused, 'bad_token');
  FakeWT.sessions = [];
});

/** start makes a device and waits for its LOGIN; it returns the device, its session and the control stream. */
async function start() {
  const states = [];
  const replies = [];
  const d = new Device({
    token: TOKEN,
    configURL: '/device-config',
    connectURL: 'https://relay.test/connect',
    onState: (state, text) => states.push([state, text]),
    onMessage: ({ mode, query, body }) => {
      const { status, body: reply } = handleMessage(mode, body, query);
      return { status, body: reply };
    },
    onReply: (status, json) => replies.push([status, json]),
  });
  const before = FakeWT.sessions.length;
  d.start();
  await eventually(() => FakeWT.sessions.length > before, 'a session');
  const wt = FakeWT.sessions.at(-1);
  const control = await wt.controlOpened;
  const login = await control.frames.readFrame(wire.MaxControlPayload);
  wire.expect(login.type, wire.FrameLogin);
  return { d, wt, control, login: wire.parseLogin(login.payload), states, replies };
}

test('backoff: full jitter under an exponential ceiling capped at 30 s', () => {
  assert.equal(backoff(0, () => 0.999999) < 500, true);
  assert.equal(Math.round(backoff(3, () => 0.5)), 2000);
  assert.equal(backoff(100, () => 0.999999) < 30_000, true);
  assert.equal(backoff(100, () => 0.999999) > 29_000, true);
  assert.equal(backoff(5, () => 0), 0);
});

test('base64ToBytes', () => {
  assert.deepEqual(base64ToBytes('AAEC/w=='), Uint8Array.of(0, 1, 2, 255));
  assert.deepEqual(base64ToBytes('AAEC_w'), Uint8Array.of(0, 1, 2, 255));
});

test('login, welcome, a message split across reads, a reply', async () => {
  const { d, wt, control, login, replies } = await start();
  assert.deepEqual(login, { version: wire.Version, token: TOKEN, agent: AGENT });
  assert.equal(wt.url, 'https://relay.test/connect');
  assert.equal(wt.options.serverCertificateHashes[0].algorithm, 'sha-256');
  assert.equal(wt.options.serverCertificateHashes[0].value.length, 32);
  assert.equal(d.state, 'connecting');

  for (const b of WELCOME) await control.writer.write(Uint8Array.of(b)); // one byte a read
  await eventually(() => d.state === 'connected', 'connected');

  const msg = wire.encodeMessage({ mode: 'notify', body: '{"text":"Hello","color":[255,0,0]}' });
  assert.deepEqual(await wt.send(msg, 3), { status: 200, body: { ok: true, rendered: 'text', text: 'Hello', scrolling: false } });
  assert.deepEqual(replies, [[200, '{"ok":true,"rendered":"text","text":"Hello","scrolling":false}']]);

  // Concurrent messages are each answered on their own stream.
  const answers = await Promise.all([
    wt.send(wire.encodeMessage({ mode: 'draw', body: '{"draw":[{"type":"fill","color":[1,2,3]}]}' })),
    wt.send(wire.encodeMessage({ mode: 'notify', body: '[]' })),
    wt.send(wire.encodeMessage({ mode: 'nope', body: '{}' })),
  ]);
  assert.deepEqual(answers.map((a) => [a.status, a.body.code ?? a.body.rendered]), [[200, 'draw'], [400, 'bad_body'], [400, 'unknown_mode']]);
});

test('a message stream that breaks the protocol gets a 4xx REPLY', async () => {
  const { d, wt, control } = await start();
  await control.writer.write(WELCOME);
  await eventually(() => d.state === 'connected', 'connected');
  const msg = wire.encodeMessage({ mode: 'notify', body: '{}' });
  const extra = new Uint8Array(msg.length + 1);
  extra.set(msg);
  assert.equal((await wt.send(extra)).body.code, 'bad_frame');
  assert.equal((await wt.send(WELCOME)).body.code, 'bad_frame');
  assert.equal((await wt.send(wire.encodeMessage({ mode: 'notify', body: '{}' }).subarray(0, 8))).body.code, 'bad_frame');
  const huge = Uint8Array.of(wire.FrameMessage, 0, 0x10, 0, 0); // 1 MiB, over 1 + 32 + max_body
  assert.deepEqual((await wt.send(huge)).status, 413);
  assert.equal(d.state, 'connected', 'a bad message stream does not end the session');
});

test('rotation: ROTATED switches the token, REFUSE keeps the old one', async () => {
  const { d, wt, control } = await start();
  await control.writer.write(WELCOME);
  await eventually(() => d.state === 'connected', 'connected');

  const next = wire.newToken();
  const done = d.rotate(next);
  await assert.rejects(d.rotate(wire.newToken()), /already pending/);
  const rot = await control.frames.readFrame(wire.MaxControlPayload);
  wire.expect(rot.type, wire.FrameRotate);
  assert.equal(wire.parseRotate(rot.payload).token, next);
  await control.writer.write(wire.encodeRotated());
  await done;
  assert.equal(d.token, next);

  const refused = d.rotate(wire.newToken());
  await control.frames.readFrame(wire.MaxControlPayload);
  await control.writer.write(wire.encodeRefuse({ reason: wire.ReasonInUse, message: 'held by another session' }));
  await assert.rejects(refused, /token_in_use \(held by another session\)/);
  assert.equal(d.token, next);
  assert.equal(d.state, 'connected');

  // bad_token refuses the new token, not the session (§6.4): it goes on
  // with the old one, and the next rotation is sent as usual.
  const bad = d.rotate(wire.newToken());
  await control.frames.readFrame(wire.MaxControlPayload);
  await control.writer.write(wire.encodeRefuse({ reason: wire.ReasonToken, message: 'token too weak' }));
  await assert.rejects(bad, /bad_token \(token too weak\)/);
  assert.equal(d.token, next);
  assert.equal(d.state, 'connected');
  assert.equal(wt.closeInfo, null, 'a refused ROTATE closes nothing');
  const again = wire.newToken();
  const last = d.rotate(again);
  assert.equal(wire.parseRotate((await control.frames.readFrame(wire.MaxControlPayload)).payload).token, again);
  await control.writer.write(wire.encodeRotated());
  await last;
  assert.equal(d.token, again);
});

test('ROTATED without ROTATE is a protocol error: close 0x1, then reconnect', async () => {
  const { d, wt, control } = await start();
  await control.writer.write(WELCOME);
  await eventually(() => d.state === 'connected', 'connected');
  await control.writer.write(wire.encodeRotated());
  await eventually(() => wt.closeInfo, 'close');
  assert.equal(wt.closeInfo.closeCode, wire.CloseProtocol);
  await eventually(() => FakeWT.sessions.length === 2, 'a reconnect within the first backoff (< 500 ms)');
});

test('REFUSE bad_token at login is permanent', async () => {
  const { d, wt, control, states } = await start();
  await control.writer.write(wire.encodeRefuse({ reason: wire.ReasonToken, message: 'token too weak' }));
  await eventually(() => d.state === 'disconnected', 'disconnected');
  assert.ok(wt.closeInfo, 'the device hangs up itself');
  assert.equal(states.at(-1)[1], 'disconnected: bad_token (token too weak)');
  // Absence takes a wait: longer than the first backoff (< 500 ms).
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(FakeWT.sessions.length, 1, 'no retry');

  // A new token is "something changing": the device logs in with it.
  const fresh = wire.newToken();
  await d.rotate(fresh);
  await eventually(() => FakeWT.sessions.length === 2, 'a new session');
  const login = await (await FakeWT.sessions[1].controlOpened).frames.readFrame(wire.MaxControlPayload);
  assert.equal(wire.parseLogin(login.payload).token, fresh);
});

test('the relay closing 0x2 with the reason name is a refusal too', async () => {
  const { d, wt, states } = await start();
  wt.relayClose(wire.CloseRefused, 'unsupported_version');
  await eventually(() => d.state === 'disconnected', 'disconnected');
  assert.equal(states.at(-1)[1], 'disconnected: refused: unsupported_version');
});

test('replaced: back off and reconnect', async () => {
  const { d, wt, control, states } = await start();
  await control.writer.write(WELCOME);
  await eventually(() => d.state === 'connected', 'connected');
  wt.relayClose(wire.CloseReplaced, 'replaced');
  // The jittered backoff may be near zero: look for the state in the
  // history, not at the current state, which may already be "connecting".
  const disconnected = () => states.find(([s]) => s === 'disconnected');
  await eventually(disconnected, 'disconnected');
  assert.match(disconnected()[1], /^disconnected: replaced: another device logged in with this token; reconnecting in/);
  await eventually(() => FakeWT.sessions.length === 2, 'a reconnect');
});

test('GOAWAY: finish, end the control stream, let the relay close, wait reconnect_after, follow the redirect once', async () => {
  const { d, wt, control, states } = await start();
  await control.writer.write(WELCOME);
  await eventually(() => d.state === 'connected', 'connected');
  await control.writer.write(wire.encodeGoAway({ reason: wire.ReasonDraining, reconnectAfter: 50, redirect: 'relay2.test:8443', message: 'restarting' }));
  // The device says it is done by ending its control stream, and leaves
  // the close to the relay, which has then read every reply.
  assert.equal(await control.frames.atEnd(), true, 'control stream ended');
  assert.equal(wt.closeInfo, null, 'the device does not close first');
  wt.relayClose(wire.CloseNormal, '');
  const gone = () => states.find(([state]) => state === 'disconnected');
  await eventually(gone, 'disconnected');
  assert.match(gone()[1], /^disconnected: draining \(restarting\); reconnecting in 0\.1 s$/);
  await eventually(() => FakeWT.sessions.length === 2, 'a reconnect');
  assert.equal(FakeWT.sessions[1].url, 'https://relay2.test:8443/connect');
});

test('the relay ending the control stream of a live session is a protocol error: close 0x1', async () => {
  const { d, wt, control } = await start();
  await control.writer.write(WELCOME);
  await eventually(() => d.state === 'connected', 'connected');
  await control.writer.close();
  await eventually(() => wt.closeInfo, 'close');
  assert.equal(wt.closeInfo.closeCode, wire.CloseProtocol);
  await eventually(() => FakeWT.sessions.length === 2, 'a reconnect within the first backoff (< 500 ms)');
});

/** streamReset is the error a browser's WebTransport stream fails with when the peer resets it. */
const streamReset = (code) => Object.assign(new Error(`stream reset with code ${code}`), { name: 'WebTransportError', source: 'stream', streamErrorCode: code });

for (const welcomed of [false, true]) {
  test(`the relay resetting the control stream ${welcomed ? 'of a live session' : 'before WELCOME'} is a protocol error: close 0x1 "control stream reset"`, async () => {
    const { d, wt, control } = await start();
    if (welcomed) {
      await control.writer.write(WELCOME);
      await eventually(() => d.state === 'connected', 'connected');
    }
    await control.writer.abort(streamReset(wire.StreamCancelled));
    await eventually(() => wt.closeInfo, 'close');
    assert.deepEqual(wt.closeInfo, { closeCode: wire.CloseProtocol, reason: 'control stream reset' });
    await eventually(() => FakeWT.sessions.length === 2, 'a reconnect within the first backoff (< 500 ms)');
  });
}

test('the relay stopping reading the control stream (STOP_SENDING) is a protocol error the next write finds', async () => {
  const { d, wt, control } = await start();
  await control.writer.write(WELCOME);
  await eventually(() => d.state === 'connected', 'connected');
  await control.reader.cancel(streamReset(wire.StreamCancelled));
  await assert.rejects(d.rotate(wire.newToken()), /cannot send ROTATE/);
  await eventually(() => wt.closeInfo, 'close');
  assert.deepEqual(wt.closeInfo, { closeCode: wire.CloseProtocol, reason: 'control stream reset' });
  assert.equal(d.token, TOKEN, 'the old token stays');
  await eventually(() => FakeWT.sessions.length === 2, 'a reconnect within the first backoff (< 500 ms)');
});

test('WELCOME above the version offered is a protocol error; below the oldest is permanent', async () => {
  {
    const { wt, control } = await start();
    await control.writer.write(wire.encodeWelcome({ version: wire.Version + 1, maxBody: 65536, maxInflight: 32, idleTimeout: 60 }));
    await eventually(() => wt.closeInfo, 'close');
    assert.equal(wt.closeInfo.closeCode, wire.CloseProtocol);
    // It reconnects (a transient error); refuse it for good to end its loop.
    await eventually(() => FakeWT.sessions.at(-1) !== wt, 'a reconnect');
    const next = FakeWT.sessions.at(-1);
    await next.controlOpened;
    next.relayClose(wire.CloseRefused, 'bad_token');
  }
  {
    const { d, wt, control, states } = await start();
    const before = FakeWT.sessions.length;
    await control.writer.write(wire.encodeWelcome({ version: wire.MinVersion - 1, maxBody: 65536, maxInflight: 32, idleTimeout: 60 }));
    await eventually(() => d.state === 'disconnected', 'disconnected');
    assert.equal(wt.closeInfo.closeCode, wire.CloseNormal);
    assert.match(states.at(-1)[1], /relay speaks only version 0/);
    await new Promise((r) => setTimeout(r, 600)); // longer than the first backoff
    assert.equal(FakeWT.sessions.length, before, 'no retry');
  }
});

/** DialWT is a WebTransport whose opening the test decides: accept() or fail(). */
class DialWT {
  static made = [];
  closedWith = null;

  constructor(url, options) {
    this.url = url;
    this.options = options;
    this.ready = new Promise((resolve, reject) => {
      this.accept = resolve;
      this.fail = reject;
    });
    this.closed = new Promise(() => {});
    DialWT.made.push(this);
  }

  close(info) {
    this.closedWith = info;
    this.fail(new Error('closed before it opened'));
  }
}

test('dial: WebTransport first, WebSocket after the head start or at once when WebTransport fails', async (t) => {
  const url = 'https://relay.test/connect';
  const opts = { serverCertificateHashes: [] };
  mock.timers.enable({ apis: ['setTimeout'] });
  t.after(() => mock.timers.reset());
  const fresh = () => {
    DialWT.made = [];
    FakeWS.last = null;
  };

  await t.test('WebTransport ready within the head start: no WebSocket', async () => {
    fresh();
    const p = dial(url, opts, { WebTransport: DialWT, WebSocket: FakeWS });
    assert.equal(DialWT.made[0].url, url);
    assert.equal(DialWT.made[0].options, opts);
    mock.timers.tick(299);
    DialWT.made[0].accept();
    const r = await p;
    assert.equal(r.transport, 'webtransport');
    assert.equal(r.conn, DialWT.made[0]);
    mock.timers.tick(10_000);
    assert.equal(FakeWS.last, null);
  });

  await t.test('WebTransport silent: WebSocket after 300 ms wins, WebTransport is closed unopened', async () => {
    fresh();
    const p = dial(url, opts, { WebTransport: DialWT, WebSocket: FakeWS });
    mock.timers.tick(299);
    assert.equal(FakeWS.last, null, 'WebSocket before the head start');
    mock.timers.tick(1);
    assert.equal(FakeWS.last.url, 'wss://relay.test/connect');
    FakeWS.last.open();
    const r = await p;
    assert.equal(r.transport, 'websocket');
    assert.ok(DialWT.made[0].closedWith, 'the WebTransport attempt closed');
    r.conn.close();
  });

  for (const [name, WT] of [
    ['WebTransport fails: WebSocket at once', DialWT],
    [
      'WebTransport throws: WebSocket at once',
      class {
        constructor() {
          throw new TypeError('bad URL');
        }
      },
    ],
    ['no WebTransport in this browser: WebSocket at once', null],
  ]) {
    await t.test(name, async () => {
      fresh();
      const p = dial(url, opts, { WebTransport: WT, WebSocket: FakeWS });
      DialWT.made[0]?.fail(new Error('QUIC handshake failed'));
      await Promise.resolve();
      assert.ok(FakeWS.last, 'a WebSocket before any time passed');
      FakeWS.last.open();
      assert.equal((await p).transport, 'websocket');
      (await p).conn.close();
    });
  }

  await t.test('both fail: why names both', async () => {
    fresh();
    const p = dial(url, opts, { WebTransport: DialWT, WebSocket: FakeWS });
    DialWT.made[0].fail(new Error('QUIC handshake failed'));
    await Promise.resolve();
    FakeWS.last.relayClose(1006, '');
    assert.deepEqual(await p, { why: 'cannot connect: WebTransport: QUIC handshake failed; WebSocket: connection lost (WebSocket close 1006)' });
  });

  await t.test('neither opens in 10 s: both closed', async () => {
    fresh();
    const p = dial(url, opts, { WebTransport: DialWT, WebSocket: FakeWS });
    mock.timers.tick(10_000);
    assert.deepEqual(await p, { why: 'no connection in 10.0 s' });
    assert.ok(DialWT.made[0].closedWith);
    // The WebSocket still connecting is closed once it opens (closing it
    // before makes the browser log an error).
    assert.equal(FakeWS.last.closedWith, null);
    FakeWS.last.open();
    assert.equal(FakeWS.last.closedWith.code, CLOSE_BASE + wire.CloseNormal);
  });
});

test('a browser without WebTransport: the whole session over WebSocket', async () => {
  const saved = [globalThis.WebTransport, globalThis.WebSocket];
  globalThis.WebTransport = undefined;
  globalThis.WebSocket = FakeWS;
  FakeWS.last = null;
  try {
    const states = [];
    const d = new Device({
      token: TOKEN,
      configURL: '/device-config',
      connectURL: 'https://relay.test/connect',
      onState: (state, text) => states.push([state, text]),
      onMessage: ({ mode, query, body }) => handleMessage(mode, body, query),
      onReply: () => {},
    });
    d.start();
    await eventually(() => FakeWS.last, 'a WebSocket');
    const ws = FakeWS.last;
    assert.equal(ws.url, 'wss://relay.test/connect');
    ws.open();
    const login = await ws.next();
    assert.deepEqual([login.type, login.id], [0x00, 0]);
    assert.equal(wire.parseLogin(login.data.subarray(wire.HeaderLen)).token, TOKEN);

    ws.deliver(encodeFrame(0x00, 0, WELCOME));
    await eventually(() => d.state === 'connected', 'connected');
    assert.equal(d.transport, 'websocket');
    assert.deepEqual(states.at(-1), ['connected', 'connected over WebSocket']);

    ws.deliver(encodeFrame(0x01, 1, wire.encodeMessage({ mode: 'notify', body: '{"text":"Hi"}' })));
    const reply = await ws.next();
    assert.deepEqual([reply.type, reply.id], [0x00, 1]);
    const r = wire.parseReply(reply.data.subarray(wire.HeaderLen));
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(new TextDecoder().decode(r.body)).rendered, 'text');
    assert.deepEqual(await ws.next(), { type: 0x01, id: 1, data: new Uint8Array(0) });

    // GOAWAY: the page ends its control stream, the relay closes, and the
    // page follows the redirect over WebSocket too.
    ws.deliver(encodeFrame(0x00, 0, wire.encodeGoAway({ reason: wire.ReasonDraining, reconnectAfter: 20, redirect: 'relay2.test:8443' })));
    assert.deepEqual(await ws.next(), { type: 0x01, id: 0, data: new Uint8Array(0) });
    ws.relayClose(CLOSE_BASE + wire.CloseNormal, '');
    await eventually(() => FakeWS.last !== ws, 'a reconnect');
    const next = FakeWS.last;
    assert.equal(next.url, 'wss://relay2.test:8443/connect');
    next.open();
    await next.next(); // LOGIN

    // The relay resetting the control stream (RESET of stream 0) is a
    // protocol error: close 4001 "control stream reset", then reconnect.
    next.deliver(encodeFrame(0x00, 0, WELCOME));
    await eventually(() => d.state === 'connected', 'connected again');
    next.deliver(encodeFrame(0x02, 0, Uint8Array.of(wire.StreamCancelled)));
    await eventually(() => next.closedWith, 'the page closes');
    assert.deepEqual(next.closedWith, { code: CLOSE_BASE + wire.CloseProtocol, reason: 'control stream reset' });
    next.relayClose(CLOSE_BASE + wire.CloseProtocol, 'control stream reset');
    await eventually(() => FakeWS.last !== next, 'a reconnect');
    const last = FakeWS.last;
    last.open();
    await last.next(); // LOGIN

    // A refusal carried by the close status is as permanent as over QUIC.
    last.relayClose(CLOSE_BASE + wire.CloseRefused, 'bad_token');
    await eventually(() => d.state === 'disconnected', 'disconnected');
    assert.equal(d.transport, '');
    assert.equal(states.at(-1)[1], 'disconnected: refused: bad_token');
  } finally {
    [globalThis.WebTransport, globalThis.WebSocket] = saved;
  }
});
