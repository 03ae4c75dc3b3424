// The relay protocol's streams over one WebSocket (docs/PROTOCOL.md §2.5),
// for browsers without WebTransport or on networks that let no UDP through.
//
// WebSocketSession offers the part of the WebTransport API that device.js
// uses (ready, closed, close, createBidirectionalStream,
// incomingBidirectionalStreams), so one Session runs over either.
//
// A page cannot send WebSocket pings; it keeps the relay's idle timer
// running with an empty STREAM frame on its control stream instead (§2.5).

import { StreamCancelled, CloseNormal, CloseProtocol, HeaderLen, MaxPayload } from './wire.js';

const STREAM = 0x00;
const STREAM_FIN = 0x01;
const RESET = 0x02;

/** CLOSE_BASE turns a §7.3 close code into a WebSocket close status. */
export const CLOSE_BASE = 4000;
/** MAX_FRAME_DATA is how much one STREAM frame carries at most (§2.5). */
export const MAX_FRAME_DATA = 16 << 10;
const MAX_CLOSE_REASON = 123; // bytes: the WebSocket limit

const utf8 = new TextEncoder();

/** appendVarint appends v (a QUIC variable-length integer, RFC 9000 §16) to out. */
export function appendVarint(out, v) {
  if (v < 0x40) out.push(v);
  else if (v < 0x4000) out.push(0x40 | (v >>> 8), v & 0xff);
  else if (v < 0x40000000) out.push(0x80 | (v >>> 24), (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  else {
    const hi = Math.floor(v / 2 ** 32);
    const lo = v >>> 0;
    out.push(0xc0 | (hi >>> 24), (hi >>> 16) & 0xff, (hi >>> 8) & 0xff, hi & 0xff);
    out.push(lo >>> 24, (lo >>> 16) & 0xff, (lo >>> 8) & 0xff, lo & 0xff);
  }
  return out;
}

/** parseVarint reads a varint at b[i]: [value, length], or null if b ends first. */
export function parseVarint(b, i) {
  if (i >= b.length) return null;
  const n = 1 << (b[i] >> 6);
  if (i + n > b.length) return null;
  let v = b[i] & 0x3f;
  for (let k = 1; k < n; k++) v = v * 256 + b[i + k];
  return [v, n];
}

/** encodeFrame is one mux frame: type, stream ID, then data or a reset code. */
export function encodeFrame(type, id, data = new Uint8Array(0)) {
  const head = appendVarint([type], id);
  const f = new Uint8Array(head.length + data.length);
  f.set(head);
  f.set(data, head.length);
  return f;
}

/** MuxError breaks the protocol: the connection closes with 4001 (§2.5). */
export class MuxError extends Error {}

/** parseFrame splits one binary message into {type, id, data} or {type, id, code}. */
export function parseFrame(b) {
  const id = b.length >= 2 ? parseVarint(b, 1) : null;
  if (!id) throw new MuxError('malformed frame');
  const type = b[0];
  const rest = b.subarray(1 + id[1]);
  switch (type) {
    case STREAM:
    case STREAM_FIN:
      return { type, id: id[0], data: rest };
    case RESET: {
      const code = parseVarint(rest, 0);
      if (!code || code[1] !== rest.length || code[0] > 0xffffffff) throw new MuxError('malformed frame');
      return { type, id: id[0], code: code[0] };
    }
    default:
      throw new MuxError(`unknown frame type 0x${type.toString(16)}`);
  }
}

/** StreamError is a stream reset with a §7.4 code. */
export class StreamError extends Error {
  constructor(code, remote) {
    super(`stream reset ${remote ? 'by the relay' : 'locally'} with code 0x${code.toString(16)}`);
    this.code = code;
    this.remote = remote;
  }
}

/**
 * WebSocketSession is a device session over a WebSocket. Options:
 *   maxIncomingStreams: streams the relay may have open at once; more are reset (§2.5)
 *   maxStreamBuffer: bytes a stream may hold unread; more breaks the protocol
 *   keepAliveMs: how often to send the empty STREAM frame; 0: never
 *   WebSocket: the constructor to use (tests pass their own)
 */
export class WebSocketSession {
  ready;
  closed;
  incomingBidirectionalStreams;

  #ws;
  #opts;
  #streams = new Map(); // open streams by ID
  #nextLocal = 0; // the ID this side opens next
  #nextPeer = 1; // the lowest ID the relay has not opened yet
  #incoming = 0; // open streams the relay opened
  #accept; // controller of incomingBidirectionalStreams
  #ended = null; // {closeCode, reason} or an Error, once the session is over
  #settleClosed;
  #keepAlive = 0;

  constructor(url, { maxIncomingStreams = 256, maxStreamBuffer = HeaderLen + MaxPayload, keepAliveMs = 20_000, WebSocket = globalThis.WebSocket } = {}) {
    this.#opts = { maxIncomingStreams, maxStreamBuffer, keepAliveMs };
    this.incomingBidirectionalStreams = new ReadableStream({
      start: (c) => {
        this.#accept = c;
      },
    });
    let settleReady;
    this.ready = new Promise((resolve, reject) => {
      settleReady = { resolve, reject };
    });
    this.closed = new Promise((resolve, reject) => {
      this.#settleClosed = { resolve, reject };
    });
    // The owner may never look at one of them (a dial that lost): an
    // unobserved rejection would be a console error.
    this.ready.catch(() => {});
    this.closed.catch(() => {});

    const ws = new WebSocket(url);
    this.#ws = ws;
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      if (this.#ended) {
        this.#closeSocket(); // closed while it was connecting (a dial that lost)
        return;
      }
      settleReady.resolve();
      if (this.#opts.keepAliveMs > 0) this.#keepAlive = setInterval(() => this.#ping(), this.#opts.keepAliveMs);
    };
    ws.onmessage = (ev) => {
      if (this.#ended) return;
      try {
        if (typeof ev.data === 'string') throw new MuxError('text message');
        this.#handle(new Uint8Array(ev.data));
      } catch (err) {
        if (!(err instanceof MuxError)) throw err;
        this.close({ closeCode: CloseProtocol, reason: err.message });
      }
    };
    ws.onclose = (ev) => {
      const err = new Error(ev.reason || `connection lost (WebSocket close ${ev.code})`);
      settleReady.reject(err);
      if (ev.code >= CLOSE_BASE && ev.code < CLOSE_BASE + 1000) this.#end({ closeCode: ev.code - CLOSE_BASE, reason: ev.reason });
      else if (ev.code === 1000) this.#end({ closeCode: CloseNormal, reason: ev.reason });
      else this.#end(err);
    };
    // Every error is followed by a close event, which says what happened.
    ws.onerror = () => {};
  }

  /** close ends the session with a §7.3 code; streams fail, closed settles. */
  close({ closeCode = CloseNormal, reason = '' } = {}) {
    if (this.#ended) return;
    this.#end({ closeCode, reason });
    // A WebSocket closed while connecting makes the browser log an error:
    // one still connecting is closed once it opens instead.
    if (this.#ws.readyState !== 0) this.#closeSocket();
  }

  /** #closeSocket sends the close frame for how the session ended. */
  #closeSocket() {
    const e = this.#ended;
    const [code, reason] = e instanceof Error ? [CloseNormal, ''] : [e.closeCode, e.reason];
    try {
      this.#ws.close(CLOSE_BASE + code, truncate(reason, MAX_CLOSE_REASON));
    } catch {
      // Already closing.
    }
  }

  /** createBidirectionalStream opens the next stream; it takes its ID now (the page writes in order). */
  async createBidirectionalStream() {
    if (this.#ended) throw this.#endError();
    if (this.#ws.readyState !== 1) throw new Error('WebSocket not open');
    const s = this.#newStream(this.#nextLocal, false);
    this.#nextLocal += 4;
    return s.pair;
  }

  /** #end settles closed and fails every stream, once. */
  #end(info) {
    if (this.#ended) return;
    this.#ended = info;
    clearInterval(this.#keepAlive);
    if (info instanceof Error) this.#settleClosed.reject(info);
    else this.#settleClosed.resolve(info);
    const err = this.#endError();
    for (const s of this.#streams.values()) s.fail(err);
    this.#streams.clear();
    try {
      this.#accept.close();
    } catch {
      // Closed already.
    }
  }

  #endError() {
    const e = this.#ended;
    return e instanceof Error ? e : new Error(`session closed (0x${e.closeCode.toString(16)}${e.reason ? `: ${e.reason}` : ''})`);
  }

  /** #ping sends an empty STREAM frame on the oldest stream this side may still write: the control stream. */
  #ping() {
    for (const s of this.#streams.values()) {
      if (s.local && !s.sendEnded) {
        this.#trySend(STREAM, s.id);
        return;
      }
    }
  }

  #send(type, id, data) {
    if (this.#ended || this.#ws.readyState !== 1) throw this.#ended ? this.#endError() : new Error('WebSocket not open');
    this.#ws.send(encodeFrame(type, id, data));
  }

  /** #trySend is #send for frames no caller waits on: if the session is over, so is the need. */
  #trySend(type, id, data) {
    if (!this.#ended && this.#ws.readyState === 1) this.#ws.send(encodeFrame(type, id, data));
  }

  /** #handle applies one frame from the relay. */
  #handle(b) {
    const f = parseFrame(b);
    const s = this.#streamFor(f.id);
    if (!s) return; // a late frame for a stream that has ended
    if (f.type === RESET) {
      s.fail(new StreamError(f.code, true));
      s.sendEnded = true;
      this.#forget(s);
      return;
    }
    s.receive(f.data, f.type === STREAM_FIN);
  }

  /** #streamFor returns the open stream id names, opening it if the relay opens it now. */
  #streamFor(id) {
    const s = this.#streams.get(id);
    if (s) return s;
    if (id % 4 >= 2) throw new MuxError(`frame for stream ${id}, a unidirectional ID that no side opens`);
    if (id % 2 === 0) {
      if (id >= this.#nextLocal) throw new MuxError(`frame for stream ${id}, which this side never opened`);
      return null;
    }
    if (id < this.#nextPeer) return null;
    if (id !== this.#nextPeer) throw new MuxError(`stream ${id} opened out of order (next is ${this.#nextPeer})`);
    this.#nextPeer += 4;
    if (this.#incoming >= this.#opts.maxIncomingStreams) {
      this.#trySend(RESET, id, Uint8Array.of(StreamCancelled));
      return null;
    }
    const n = this.#newStream(id, true);
    this.#incoming++;
    this.#accept.enqueue(n.pair);
    return n;
  }

  #newStream(id, incoming) {
    const s = new MuxStream(id, !incoming, this.#opts.maxStreamBuffer, {
      send: (type, data) => this.#send(type, id, data),
      done: () => this.#forget(s),
    });
    this.#streams.set(id, s);
    return s;
  }

  /** #forget drops a stream once both its sides have ended. */
  #forget(s) {
    if (!s.sendEnded || !s.recvEnded || this.#streams.get(s.id) !== s) return;
    this.#streams.delete(s.id);
    if (!s.local) this.#incoming--;
  }
}

/** MuxStream is one stream: pair is its {readable, writable}. */
class MuxStream {
  sendEnded = false;
  recvEnded = false;
  pair;

  #read; // controller of the readable side
  #write; // controller of the writable side
  #recvFIN = false;
  #io; // {send(type, data), done()}

  constructor(id, local, limit, io) {
    this.id = id;
    this.local = local;
    this.#io = io;
    const readable = new ReadableStream(
      {
        start: (c) => {
          this.#read = c;
        },
        // The page read what it needed (a bad message): drop the rest
        // locally. A RESET would end our side too, and the REPLY follows.
        cancel: () => {
          this.recvEnded = true;
          this.#io.done();
        },
      },
      new ByteLengthQueuingStrategy({ highWaterMark: limit }),
    );
    const writable = new WritableStream({
      start: (c) => {
        this.#write = c;
      },
      write: (chunk) => {
        const b = chunk instanceof Uint8Array ? chunk : new Uint8Array(chunk);
        for (let i = 0; i < b.length; i += MAX_FRAME_DATA) this.#io.send(STREAM, b.subarray(i, i + MAX_FRAME_DATA));
      },
      close: () => {
        this.#io.send(STREAM_FIN);
        this.sendEnded = true;
        this.#io.done();
      },
      abort: () => {
        if (!this.sendEnded || !this.recvEnded) this.#io.send(RESET, Uint8Array.of(StreamCancelled));
        this.fail(new StreamError(StreamCancelled, false));
        this.sendEnded = true;
        this.#io.done();
      },
    });
    this.pair = { readable, writable };
  }

  /** receive queues data from the relay; fin ends its side. */
  receive(data, fin) {
    if (this.#recvFIN) throw new MuxError(`data on stream ${this.id} after its end`);
    this.#recvFIN = fin;
    if (this.recvEnded) return; // cancelled: dropped
    if (data.length) {
      this.#read.enqueue(data); // the message's own buffer: no copy
      if (this.#read.desiredSize < 0) throw new MuxError(`stream ${this.id} over its buffer`);
    }
    if (fin) {
      this.#read.close();
      this.recvEnded = true;
      this.#io.done();
    }
  }

  /** fail ends both sides with err: a reset, or the session's end. */
  fail(err) {
    if (!this.recvEnded) {
      this.recvEnded = true;
      try {
        this.#read.error(err);
      } catch {
        // Closed already.
      }
    }
    try {
      this.#write.error(err);
    } catch {
      // Closed already.
    }
  }
}

/** truncate cuts s to at most n bytes of UTF-8, on a character boundary. */
function truncate(s, n) {
  let out = '';
  let size = 0;
  for (const ch of s) {
    size += utf8.encode(ch).length;
    if (size > n) break;
    out += ch;
  }
  return out;
}
