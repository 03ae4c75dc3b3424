// The relay's device protocol, version 1 (minor versions 1 and 2): frame
// encoding and decoding.
//
// This mirrors the Go package wire (wire/wire.go, wire/token.go) name for
// name, in JavaScript spelling: wire.Login.Append is encodeLogin, ParseLogin
// is parseLogin, ReadFrame is FrameReader.readFrame. docs/PROTOCOL.md is the
// normative text. Every frame is a 5-byte header (type u8, payload length
// u32 big-endian) and the payload; all integers are big-endian.

export const ALPN = 'awtrix-relay/1';
// Minor versions (PROTOCOL.md §1): the device offers the newest it speaks;
// WELCOME names the one in force, never above the offer.
export const MinVersion = 1;
export const Version = 2; // 2 adds a query and a timeout to MESSAGE
export const HeaderLen = 5;

// Size limits of the protocol itself (PROTOCOL.md §3).
export const MaxControlPayload = 1024;
export const MaxModeLen = 32;
export const MaxQueryLen = 255; // a MESSAGE's query, from version 2
export const MaxReplyBody = 1 << 16;
export const MaxPayload = 1 << 20;
const maxAgentLen = 64;
const maxTextLen = 255;

// Frame types.
export const FrameLogin = 0x01; // device -> relay, first frame of the control stream
export const FrameWelcome = 0x02; // relay -> device, login accepted
export const FrameRefuse = 0x03; // relay -> device, login or rotation refused
export const FrameRotate = 0x04; // device -> relay, rebind the session to a new token
export const FrameRotated = 0x05; // relay -> device, rotation done
export const FrameGoAway = 0x06; // relay -> device, leave and reconnect later
export const FrameMessage = 0x10; // relay -> device, one webhook
export const FrameReply = 0x11; // device -> relay, the device's answer

const frameNames = {
  [FrameLogin]: 'LOGIN', [FrameWelcome]: 'WELCOME', [FrameRefuse]: 'REFUSE',
  [FrameRotate]: 'ROTATE', [FrameRotated]: 'ROTATED', [FrameGoAway]: 'GOAWAY',
  [FrameMessage]: 'MESSAGE', [FrameReply]: 'REPLY',
};

/** frameName is FrameType.String: "LOGIN", or "frame(0x42)" for unknown types. */
export function frameName(type) {
  return frameNames[type] ?? `frame(0x${type.toString(16).padStart(2, '0')})`;
}

// Reasons of REFUSE and GOAWAY (§7.2). Unknown codes count as ReasonInternal.
export const ReasonVersion = 1;
export const ReasonToken = 2;
export const ReasonInUse = 3;
export const ReasonDraining = 4;
export const ReasonFull = 5;
export const ReasonLimited = 6;
export const ReasonProtocol = 7;
export const ReasonReplaced = 8;
export const ReasonInternal = 9;

const reasonNames = [, 'unsupported_version', 'bad_token', 'token_in_use', 'draining',
  'relay_full', 'rate_limited', 'protocol_error', 'replaced', 'internal'];

/** reasonName is Reason.String: "bad_token", or "reason(42)" for unknown codes. */
export function reasonName(code) {
  return reasonNames[code] ?? `reason(${code})`;
}

/**
 * reasonFromName maps a close reason text (§6.2: the relay closes with the
 * reason's name after a REFUSE) back to a name, "internal" when unknown.
 */
export function reasonFromName(text) {
  return reasonNames.includes(text) ? text : 'internal';
}

// Session close codes (§7.3): QUIC APPLICATION_CLOSE, and WebTransport
// session close codes, which carry the same numbers.
export const CloseNormal = 0x0;
export const CloseProtocol = 0x1;
export const CloseRefused = 0x2;
export const CloseReplaced = 0x3;
export const CloseGoingAway = 0x4;
export const CloseLoginTimeout = 0x5;
export const CloseInternal = 0x6;

// Stream reset codes on message streams (§7.4).
export const StreamCancelled = 0x1;
export const StreamProtocol = 0x2;
export const StreamTooLarge = 0x3;

// Decoder errors, as the Go sentinels spell them; WireError.kind is one.
export const ErrMalformed = 'wire: malformed frame';
export const ErrTooLarge = 'wire: frame too large';
export const ErrUnexpected = 'wire: unexpected frame';
export const ErrUnexpectedEOF = 'wire: unexpected EOF';

/** WireError is a protocol error; kind is one of the Err constants. */
export class WireError extends Error {
  constructor(kind, detail) {
    super(detail ? `${kind}: ${detail}` : kind);
    this.name = 'WireError';
    this.kind = kind;
  }
}

// ---- Encoding ----------------------------------------------------------

const ascii = new TextEncoder();

/** frame builds header + payload from fields: numbers are u8 unless wrapped. */
function frame(type, parts) {
  const bytes = parts.map((p) => (typeof p === 'number' ? Uint8Array.of(p) : p));
  const n = bytes.reduce((sum, b) => sum + b.length, 0);
  const out = new Uint8Array(HeaderLen + n);
  out[0] = type;
  new DataView(out.buffer).setUint32(1, n);
  let off = HeaderLen;
  for (const b of bytes) {
    out.set(b, off);
    off += b.length;
  }
  return out;
}

function u16(v) {
  const b = new Uint8Array(2);
  new DataView(b.buffer).setUint16(0, v);
  return b;
}

function u32(v) {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v);
  return b;
}

/** bytesOf turns a string (ASCII text or token) or byte array into bytes. */
function bytesOf(v) {
  return typeof v === 'string' ? ascii.encode(v) : v;
}

/** short is a u8-length-prefixed field; what names it in the error. */
function short(v, what) {
  const b = bytesOf(v);
  if (b.length > 0xff) throw new RangeError(`wire: ${what} longer than 255 bytes`);
  return [b.length, b];
}

/** clip cuts a text field to 255 bytes, as the Go encoder does. */
function clip(v) {
  return bytesOf(v).subarray(0, maxTextLen);
}

/** encodeLogin is Login.Append. Agent is cut to 64 bytes. */
export function encodeLogin({ version = Version, token, agent = '' }) {
  return frame(FrameLogin, [version, ...short(token, 'token'), ...short(bytesOf(agent).subarray(0, maxAgentLen), 'agent')]);
}

/** encodeWelcome is Welcome.Append; idleTimeout is in whole seconds. */
export function encodeWelcome({ version = Version, maxBody, maxInflight, idleTimeout }) {
  return frame(FrameWelcome, [version, u32(maxBody), u16(maxInflight), u16(Math.min(idleTimeout, 0xffff))]);
}

/** encodeRefuse is Refuse.Append. */
export function encodeRefuse({ reason, message = '' }) {
  return frame(FrameRefuse, [reason, ...short(clip(message))]);
}

/** encodeRotate is Rotate.Append. */
export function encodeRotate({ token }) {
  return frame(FrameRotate, short(token, 'token'));
}

/** encodeRotated is AppendRotated. */
export function encodeRotated() {
  return frame(FrameRotated, []);
}

/** encodeGoAway is GoAway.Append; reconnectAfter is in milliseconds. */
export function encodeGoAway({ reason, reconnectAfter, redirect = '', message = '' }) {
  return frame(FrameGoAway, [reason, u32(reconnectAfter), ...short(clip(redirect)), ...short(clip(message))]);
}

/**
 * messageOverhead is MessageOverhead: the most a MESSAGE payload at version
 * v holds besides its body.
 */
export function messageOverhead(v) {
  return v < 2 ? 1 + MaxModeLen : 1 + MaxModeLen + 1 + MaxQueryLen + 4;
}

/**
 * encodeMessage is Message.AppendAt: at version 1 query and timeout (in
 * milliseconds) are not encoded.
 */
export function encodeMessage({ mode, query = '', timeout = 0, body }, version = Version) {
  if (version < 2) return frame(FrameMessage, [...short(mode, 'mode'), bytesOf(body)]);
  return frame(FrameMessage, [...short(mode, 'mode'), ...short(query, 'query'), u32(timeout), bytesOf(body)]);
}

/** encodeReply is Reply.Append. A status outside 200..599 is a bug and throws. */
export function encodeReply({ status, body }) {
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    throw new RangeError(`wire: reply status ${status} outside 200..599`);
  }
  return frame(FrameReply, [u16(status), bytesOf(body)]);
}

// ---- Decoding ----------------------------------------------------------

const text = new TextDecoder('ascii');

/**
 * Payload walks a frame payload, like the Go payload type. The first short
 * read throws a WireError naming the frame and the field.
 */
class Payload {
  constructor(bytes, type) {
    this.b = bytes;
    this.off = 0;
    this.type = type;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  fail(what) {
    throw new WireError(ErrMalformed, `${frameName(this.type)}: ${what}`);
  }

  bytes(n, what) {
    if (n > this.b.length - this.off) this.fail(`short ${what}`);
    const v = this.b.subarray(this.off, this.off + n);
    this.off += n;
    return v;
  }

  u8(what) {
    return this.bytes(1, what)[0];
  }

  u16(what) {
    this.bytes(2, what);
    return this.view.getUint16(this.off - 2);
  }

  u32(what) {
    this.bytes(4, what);
    return this.view.getUint32(this.off - 4);
  }

  short(what) {
    return this.bytes(this.u8(`${what} length`), what);
  }

  /** text decodes printable ASCII (0x20..0x7E), the only text the protocol has. */
  text(b, what) {
    for (const c of b) {
      if (c < 0x20 || c > 0x7e) this.fail(`${what} is not printable ASCII`);
    }
    return text.decode(b);
  }

  rest() {
    return this.bytes(this.b.length - this.off, 'body');
  }

  /** done fails if bytes remain: frames have no optional trailing data in v1. */
  done() {
    const left = this.b.length - this.off;
    if (left > 0) this.fail(`${left} trailing bytes`);
  }
}

/** parseLogin is ParseLogin. The token is returned as a string. */
export function parseLogin(b) {
  const p = new Payload(b, FrameLogin);
  const version = p.u8('version');
  const token = text.decode(p.short('token'));
  const agent = p.short('agent');
  if (agent.length > maxAgentLen) p.fail('agent longer than 64 bytes');
  const f = { version, token, agent: p.text(agent, 'agent') };
  p.done();
  return f;
}

/** parseWelcome is ParseWelcome; idleTimeout is in seconds. */
export function parseWelcome(b) {
  const p = new Payload(b, FrameWelcome);
  const f = { version: p.u8('version'), maxBody: p.u32('max body'), maxInflight: p.u16('max inflight'), idleTimeout: p.u16('idle timeout') };
  p.done();
  return f;
}

/** parseRefuse is ParseRefuse. */
export function parseRefuse(b) {
  const p = new Payload(b, FrameRefuse);
  const f = { reason: p.u8('reason') };
  f.message = p.text(p.short('message'), 'message');
  p.done();
  return f;
}

/** parseRotate is ParseRotate. The token is returned as a string. */
export function parseRotate(b) {
  const p = new Payload(b, FrameRotate);
  const f = { token: text.decode(p.short('token')) };
  p.done();
  return f;
}

/** parseRotated checks that a ROTATED payload is empty. */
export function parseRotated(b) {
  new Payload(b, FrameRotated).done();
  return {};
}

/** parseGoAway is ParseGoAway; reconnectAfter is in milliseconds. */
export function parseGoAway(b) {
  const p = new Payload(b, FrameGoAway);
  const f = { reason: p.u8('reason'), reconnectAfter: p.u32('reconnect after') };
  f.redirect = p.text(p.short('redirect'), 'redirect');
  f.message = p.text(p.short('message'), 'message');
  p.done();
  return f;
}

/**
 * parseMessage is ParseMessage for a session at version v: {mode, query,
 * timeout (ms), body}, query '' and timeout 0 at version 1. body is a view
 * into b.
 */
export function parseMessage(b, v = Version) {
  const p = new Payload(b, FrameMessage);
  const mode = p.short('mode');
  if (mode.length === 0 || mode.length > MaxModeLen) p.fail('mode length outside 1..32');
  const f = { mode: p.text(mode, 'mode'), query: '', timeout: 0 };
  if (v >= 2) {
    f.query = p.text(p.short('query'), 'query');
    if (!isURLEncoded(f.query)) p.fail('query is not URL-encoded');
    f.timeout = p.u32('timeout');
  }
  f.body = p.rest();
  return f;
}

/** isURLEncoded is what Go's url.ParseQuery accepts, without spaces. */
function isURLEncoded(q) {
  if (q.includes(' ') || q.includes(';')) return false;
  try {
    for (const part of q.split('&')) decodeURIComponent(part.replace(/\+/g, ' '));
  } catch {
    return false;
  }
  return true;
}

/** parseReply is ParseReply. body is a view into b. */
export function parseReply(b) {
  const p = new Payload(b, FrameReply);
  const status = p.u16('status');
  if (status < 200 || status > 599) p.fail(`status ${status} outside 200..599`);
  const body = p.rest();
  if (body.length > MaxReplyBody) p.fail('reply body over 64 KiB');
  return { status, body };
}

/** expect is Expect: it throws ErrUnexpected unless got is want. */
export function expect(got, want) {
  if (got !== want) throw new WireError(ErrUnexpected, `got ${frameName(got)}, want ${frameName(want)}`);
}

/**
 * FrameReader reads frames from a stream reader (a ReadableStreamDefaultReader
 * of Uint8Array chunks, or anything with the same read()). A stream delivers
 * bytes in chunks that need not line up with frames, so it buffers: one read
 * may hold half a header, or the end of one frame and the start of the next.
 */
export class FrameReader {
  #reader;
  #chunks = []; // buffered bytes, oldest first
  #buffered = 0; // total length of #chunks
  #eof = false;

  constructor(reader) {
    this.#reader = reader;
  }

  /** #fill reads until n bytes are buffered; false if the stream ends first. */
  async #fill(n) {
    while (this.#buffered < n && !this.#eof) {
      const { value, done } = await this.#reader.read();
      if (done) {
        this.#eof = true;
      } else if (value && value.byteLength > 0) {
        const chunk = value instanceof Uint8Array ? value : new Uint8Array(value);
        this.#chunks.push(chunk);
        this.#buffered += chunk.length;
      }
    }
    return this.#buffered >= n;
  }

  /** #take removes the first n buffered bytes (n <= #buffered). */
  #take(n) {
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const c = this.#chunks[0];
      const k = Math.min(c.length, n - off);
      out.set(c.subarray(0, k), off);
      off += k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    this.#buffered -= n;
    return out;
  }

  /**
   * readFrame is ReadFrame: it resolves to {type, payload}, or null when the
   * stream ends cleanly before a frame begins. It rejects a payload over
   * limit bytes (capped at MaxPayload) before reading it, and throws
   * ErrUnexpectedEOF for a stream that ends inside a frame.
   */
  async readFrame(limit = MaxPayload) {
    if (!(await this.#fill(HeaderLen))) {
      if (this.#buffered === 0) return null;
      throw new WireError(ErrUnexpectedEOF, 'stream ended inside a frame header');
    }
    const hdr = this.#take(HeaderLen);
    const type = hdr[0];
    const n = new DataView(hdr.buffer).getUint32(1);
    const lim = Math.max(0, Math.min(limit, MaxPayload));
    if (n > lim) {
      throw new WireError(ErrTooLarge, `${frameName(type)} payload of ${n} bytes exceeds ${lim}`);
    }
    if (!(await this.#fill(n))) {
      throw new WireError(ErrUnexpectedEOF, `stream ended inside a ${frameName(type)} payload`);
    }
    return { type, payload: this.#take(n) };
  }

  /** atEnd resolves true if the stream ends with no more bytes. */
  async atEnd() {
    await this.#fill(1);
    return this.#buffered === 0 && this.#eof;
  }
}

// ---- Tokens (wire/token.go) ---------------------------------------------

export const MinTokenLen = 22;
export const MaxTokenLen = 128;
const minDistinct = 12;
const newTokenBytes = 32;

export const ErrTokenMissing = 'wire: token missing';
export const ErrTokenMalformed = 'wire: token malformed';
export const ErrTokenWeak = 'wire: token too weak';

/**
 * checkToken is CheckToken: it returns null for an acceptable token (22 to
 * 128 base64url characters, at least 12 distinct), else the reason.
 */
export function checkToken(tok) {
  if (typeof tok !== 'string' || tok.length === 0) return ErrTokenMissing;
  if (tok.length < MinTokenLen || tok.length > MaxTokenLen) {
    return `${ErrTokenMalformed}: length ${tok.length} outside ${MinTokenLen}..${MaxTokenLen}`;
  }
  if (!/^[A-Za-z0-9_-]+$/.test(tok)) return `${ErrTokenMalformed}: characters outside A-Z a-z 0-9 - _`;
  if (new Set(tok).size < minDistinct) return ErrTokenWeak;
  return null;
}

/** newToken is NewToken: 256 bits from the CSPRNG as unpadded base64url (43 characters). */
export function newToken() {
  const b = crypto.getRandomValues(new Uint8Array(newTokenBytes));
  return btoa(String.fromCharCode(...b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
