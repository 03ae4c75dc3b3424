// Round trips of static/wire.js against the examples in docs/PROTOCOL.md.
// Run: node --test web/static/wire.test.mjs (node 20+, no npm packages).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as wire from './wire.js';

/** hex parses the doc's notation: "01 00 | 2b" with spaces and bars. */
function hex(s) {
  const digits = s.replace(/[\s|]/g, '');
  return Uint8Array.from(digits.match(/../g), (h) => parseInt(h, 16));
}

const ascii = (b) => new TextDecoder().decode(b);

/** payloadOf checks a frame's header and returns its payload. */
function payloadOf(frame, type) {
  assert.equal(frame[0], type, 'type');
  const n = new DataView(frame.buffer, frame.byteOffset).getUint32(1);
  assert.equal(n, frame.length - wire.HeaderLen, 'length');
  return frame.subarray(wire.HeaderLen);
}

// §4.1
const loginHex = `
  01 00 00 00 37
  01
  2b
  71 33 4a 74 30 62 58 37 79 56 77 32 5a 6b 50 39
  64 4c 6d 34 48 73 41 31 65 52 66 47 75 4e 38 63
  54 69 4f 6f 45 70 35 4b 78 59 7a
  09 65 73 70 33 32 2f 31 2e 30`;
const loginToken = 'q3Jt0bX7yVw2ZkP9dLm4HsA1eRfGuN8cTiOoEp5KxYz';

test('LOGIN matches PROTOCOL.md §4.1', () => {
  const f = wire.encodeLogin({ version: 1, token: loginToken, agent: 'esp32/1.0' });
  assert.deepEqual(f, hex(loginHex));
  assert.equal(f.length, 60);
  assert.deepEqual(wire.parseLogin(payloadOf(f, wire.FrameLogin)), { version: 1, token: loginToken, agent: 'esp32/1.0' });
});

test('LOGIN cuts the agent to 64 bytes', () => {
  const f = wire.encodeLogin({ token: loginToken, agent: 'a'.repeat(100) });
  assert.equal(wire.parseLogin(payloadOf(f, wire.FrameLogin)).agent, 'a'.repeat(64));
});

test('WELCOME matches PROTOCOL.md §4.2', () => {
  const want = hex('02 00 00 00 09 | 01 | 00 01 00 00 | 00 20 | 00 3c');
  const w = { version: 1, maxBody: 65536, maxInflight: 32, idleTimeout: 60 };
  assert.deepEqual(wire.encodeWelcome(w), want);
  assert.deepEqual(wire.parseWelcome(payloadOf(want, wire.FrameWelcome)), w);
});

test('REFUSE round trip', () => {
  const r = { reason: wire.ReasonToken, message: 'token too weak' };
  const f = wire.encodeRefuse(r);
  assert.deepEqual(f.subarray(0, 7), hex('03 00 00 00 10 | 02 0e'));
  assert.deepEqual(wire.parseRefuse(payloadOf(f, wire.FrameRefuse)), r);
  assert.equal(wire.reasonName(r.reason), 'bad_token');
});

test('ROTATE and ROTATED match PROTOCOL.md §4.4', () => {
  const f = wire.encodeRotate({ token: loginToken });
  assert.deepEqual(f.subarray(0, 6), hex('04 00 00 00 2c | 2b'));
  assert.deepEqual(wire.parseRotate(payloadOf(f, wire.FrameRotate)), { token: loginToken });
  assert.deepEqual(wire.encodeRotated(), hex('05 00 00 00 00'));
  assert.deepEqual(wire.parseRotated(new Uint8Array(0)), {});
  assert.throws(() => wire.parseRotated(hex('00')), { kind: wire.ErrMalformed });
});

test('GOAWAY matches PROTOCOL.md §4.6', () => {
  const want = hex('06 00 00 00 1a | 04 | 00 00 09 c4 | 00 | 13 72 65 6c 61 79 20 69 73 20 72 65 73 74 61 72 74 69 6e 67');
  const g = { reason: wire.ReasonDraining, reconnectAfter: 2500, redirect: '', message: 'relay is restarting' };
  assert.deepEqual(wire.encodeGoAway(g), want);
  assert.deepEqual(wire.parseGoAway(payloadOf(want, wire.FrameGoAway)), g);
});

test('MESSAGE matches PROTOCOL.md §4.7', () => {
  const want = hex(`10 00 00 00 14
    06 6e 6f 74 69 66 79
    7b 22 74 65 78 74 22 3a 22 48 69 22 7d`);
  assert.deepEqual(wire.encodeMessage({ mode: 'notify', body: '{"text":"Hi"}' }, 1), want);
  const m = wire.parseMessage(payloadOf(want, wire.FrameMessage), 1);
  assert.equal(m.mode, 'notify');
  assert.equal(ascii(m.body), '{"text":"Hi"}');

  // Version 2 adds query and timeout.
  const want2 = hex(`10 00 00 00 25
    06 63 75 73 74 6f 6d
    0c 6e 61 6d 65 3d 77 65 61 74 68 65 72
    00 00 11 94
    7b 22 74 65 78 74 22 3a 22 48 69 22 7d`);
  assert.deepEqual(wire.encodeMessage({ mode: 'custom', query: 'name=weather', timeout: 4500, body: '{"text":"Hi"}' }), want2);
  const m2 = wire.parseMessage(payloadOf(want2, wire.FrameMessage));
  assert.deepEqual([m2.mode, m2.query, m2.timeout, ascii(m2.body)], ['custom', 'name=weather', 4500, '{"text":"Hi"}']);
  assert.equal(wire.messageOverhead(1), 33);
  assert.equal(wire.messageOverhead(2), 293);
});

test('REPLY matches PROTOCOL.md §4.8', () => {
  const want = hex('11 00 00 00 04 | 00 c8 | 7b 7d');
  assert.deepEqual(wire.encodeReply({ status: 200, body: '{}' }), want);
  const r = wire.parseReply(payloadOf(want, wire.FrameReply));
  assert.equal(r.status, 200);
  assert.equal(ascii(r.body), '{}');
  assert.throws(() => wire.encodeReply({ status: 199, body: '{}' }), RangeError);
  assert.throws(() => wire.parseReply(hex('02 58 7b 7d')), { kind: wire.ErrMalformed }); // status 600
});

test('malformed payloads are refused', () => {
  const cases = [
    ['short WELCOME', () => wire.parseWelcome(hex('01 00 01 00 00 00 20 00'))],
    ['trailing bytes', () => wire.parseWelcome(hex('01 00 01 00 00 00 20 00 3c ff'))],
    ['empty mode', () => wire.parseMessage(hex('00 7b 7d'))],
    ['mode over 32', () => wire.parseMessage(Uint8Array.of(33, ...new Uint8Array(33).fill(0x61)))],
    ['non-ASCII mode', () => wire.parseMessage(hex('02 6e 0a'))],
    ['v2 without a query', () => wire.parseMessage(hex('01 61'))],
    ['v2 short timeout', () => wire.parseMessage(hex('01 61 00 00 00 01'))],
    ['v2 query with a space', () => wire.parseMessage(hex('01 61 03 6e 3d 20 00 00 00 00'))],
    ['v2 query bad escape', () => wire.parseMessage(hex('01 61 03 25 7a 7a 00 00 00 00'))],
    ['short token', () => wire.parseRotate(hex('2b 61 62'))],
    ['non-printable message', () => wire.parseRefuse(hex('02 01 07'))],
  ];
  for (const [name, fn] of cases) assert.throws(fn, { kind: wire.ErrMalformed }, name);
});

/** chunked is a stream reader that hands out bytes in the given chunk sizes. */
function chunked(bytes, sizes) {
  let off = 0;
  let i = 0;
  return {
    async read() {
      if (off >= bytes.length) return { done: true, value: undefined };
      const n = sizes[i++ % sizes.length];
      const value = bytes.slice(off, off + n);
      off += n;
      return { done: false, value };
    },
  };
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

test('FrameReader reassembles frames split across reads', async () => {
  const stream = concat(hex('02 00 00 00 09 01 00 01 00 00 00 20 00 3c'), wire.encodeRotated(), wire.encodeGoAway({ reason: 4, reconnectAfter: 10, message: 'bye' }));
  for (const sizes of [[1], [2, 3], [7], [4, 100], [stream.length]]) {
    const r = new wire.FrameReader(chunked(stream, sizes));
    const a = await r.readFrame(wire.MaxControlPayload);
    assert.equal(a.type, wire.FrameWelcome);
    assert.equal(wire.parseWelcome(a.payload).maxBody, 65536);
    const b = await r.readFrame(wire.MaxControlPayload);
    assert.equal(b.type, wire.FrameRotated);
    assert.equal(b.payload.length, 0);
    const c = await r.readFrame(wire.MaxControlPayload);
    assert.equal(wire.parseGoAway(c.payload).message, 'bye');
    assert.equal(await r.atEnd(), true);
    assert.equal(await r.readFrame(), null, `sizes ${sizes}`);
  }
});

test('FrameReader: a MESSAGE then the end of the stream', async () => {
  const msg = wire.encodeMessage({ mode: 'draw', body: '{"draw":[{"type":"clear"}]}' });
  const r = new wire.FrameReader(chunked(msg, [3]));
  const f = await r.readFrame(1 + 32 + 65536);
  assert.equal(f.type, wire.FrameMessage);
  assert.equal(await r.atEnd(), true);

  const extra = new wire.FrameReader(chunked(concat(msg, hex('00')), [5]));
  await extra.readFrame();
  assert.equal(await extra.atEnd(), false);
});

test('FrameReader refuses an oversized length before reading the payload', async () => {
  let reads = 0;
  const reader = {
    async read() {
      reads++;
      return reads === 1 ? { done: false, value: hex('10 00 01 00 00') } : { done: false, value: new Uint8Array(1 << 16) };
    },
  };
  await assert.rejects(new wire.FrameReader(reader).readFrame(1000), { kind: wire.ErrTooLarge });
  assert.equal(reads, 1);
  await assert.rejects(new wire.FrameReader(chunked(hex('10 00 20 00 00'), [5])).readFrame(1 << 30), { kind: wire.ErrTooLarge }, 'capped at MaxPayload');
});

test('FrameReader: a stream that ends inside a frame', async () => {
  await assert.rejects(new wire.FrameReader(chunked(hex('11 00 00'), [1])).readFrame(), { kind: wire.ErrUnexpectedEOF });
  await assert.rejects(new wire.FrameReader(chunked(hex('11 00 00 00 04 00 c8'), [2])).readFrame(), { kind: wire.ErrUnexpectedEOF });
});

test('tokens', () => {
  const t = wire.newToken();
  assert.match(t, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(wire.checkToken(t), null);
  assert.notEqual(wire.newToken(), t);
  assert.equal(wire.checkToken(loginToken), null);
  assert.equal(wire.checkToken(''), wire.ErrTokenMissing);
  assert.match(wire.checkToken('short'), /malformed/);
  assert.match(wire.checkToken(`${loginToken}=`), /malformed/);
  assert.equal(wire.checkToken('abcabcabcabcabcabcabcabc'), wire.ErrTokenWeak);
});

test('reason names', () => {
  assert.equal(wire.reasonName(wire.ReasonVersion), 'unsupported_version');
  assert.equal(wire.reasonName(42), 'reason(42)');
  assert.equal(wire.reasonFromName('replaced'), 'replaced');
  assert.equal(wire.reasonFromName('no such reason'), 'internal');
  assert.equal(wire.frameName(0x42), 'frame(0x42)');
});
