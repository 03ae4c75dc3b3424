// The device side of the relay protocol (docs/PROTOCOL.md) over WebTransport,
// or over a WebSocket where WebTransport is missing or UDP is blocked (§2.5).
//
// A Device keeps one session up at a time: fetch /device-config, open a
// WebTransport session at /connect (and a WebSocket one if that fails or is
// not ready after a head start), open the control stream, LOGIN, then read
// control frames while answering message streams. It reconnects with
// exponential backoff and full jitter, waits out GOAWAY, and stops for good
// on bad_token and unsupported_version (§8).
//
// What the browser does not let a page do: QUIC keep-alive PINGs (§2.3) and
// stream credit (§2.2) are Chromium's. Chromium's QUIC stack pings while a
// stream is open, and the control stream stays open for the whole session.
// Over WebSocket, wsmux.js keeps the session alive itself.

import * as wire from './wire.js';
import { StreamError, WebSocketSession } from './wsmux.js';

export const AGENT = 'virtual-awtrix/1';

const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30_000;
const STABLE_AFTER_MS = 60_000; // a session this long resets the backoff (§8)
const LOGIN_TIMEOUT_MS = 10_000; // dial bound, then login bound (§8)
const HEAD_START_MS = 300; // WebTransport's lead over WebSocket (§2.5)
const DRAIN_MS = 5_000; // how long GOAWAY waits for open messages: the relay's ack timeout
const GOAWAY_LINGER_MS = 10_000; // how long it then waits for the relay to close
const CLOSE_WAIT_MS = 2_000; // how long to wait for the relay's close after the control stream ends
const PERMANENT = new Set(['bad_token', 'unsupported_version']);

/** TRANSPORTS names the transports as the page shows them. */
export const TRANSPORTS = { webtransport: 'WebTransport', websocket: 'WebSocket' };

/** backoff is the wait before retry n: uniform in [0, min(cap, base * 2^n)). */
export function backoff(attempt, random = Math.random) {
  return random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempt, 30));
}

/** base64ToBytes decodes standard or URL-safe base64, padded or not. */
export function base64ToBytes(s) {
  const std = s.replace(/-/g, '+').replace(/_/g, '/');
  return Uint8Array.from(atob(std.padEnd(Math.ceil(std.length / 4) * 4, '=')), (c) => c.charCodeAt(0));
}

/** validRedirect accepts a GOAWAY redirect of the form host:port or [v6]:port. */
function validRedirect(r) {
  return /^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$/.test(r);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;
const utf8 = new TextEncoder();

/** ProtocolError breaks the protocol on the control stream: close 0x1 (§7.1). */
class ProtocolError extends Error {}

/** CONTROL_RESET is the close reason for a reset control stream, the relay's own text for it (§7.4). */
const CONTROL_RESET = 'control stream reset';

/**
 * resetByRelay reports whether err is a stream reset by the relay, as
 * opposed to the session's end: a WebTransport stream error, or a RESET
 * frame over WebSocket. The page never resets its control stream itself.
 */
function resetByRelay(err) {
  return (err instanceof StreamError && err.remote) || (err?.name === 'WebTransportError' && err.source === 'stream');
}

/**
 * Device is the reconnecting device. Callbacks:
 *   onState(state, text): state is "connecting", "connected" or "disconnected"
 *   onMessage({mode, query, timeout, body}) -> {status, body}: render one
 *     message (synchronously); query is URL-encoded, '' for none
 *   onReply(status, json): every reply, just before it is written
 */
export class Device {
  state = 'disconnected';
  token; // the token the next LOGIN uses; changed by rotate()
  transport = ''; // the live session's: 'webtransport', 'websocket', or '' when none

  #opts;
  #session = null; // the live Session, if any
  #running = false; // the connect loop runs
  #wake = null; // ends the current backoff wait early

  constructor({ token, configURL, connectURL, onState, onMessage, onReply }) {
    this.token = token;
    this.#opts = { configURL, connectURL, onState, onMessage, onReply };
  }

  /** start runs the connect loop; it is a no-op if it is running. */
  start() {
    if (this.#running) return;
    this.#running = true;
    this.#loop().catch((err) => this.#state('disconnected', `disconnected: ${err.message}`));
  }

  /**
   * rotate makes newToken the device's token. Online it sends ROTATE and
   * resolves on ROTATED, or rejects with the REFUSE reason; the caller keeps
   * the old token then. Offline it simply logs in with the new token next
   * (PROTOCOL.md §5), and reconnects now if the loop had stopped.
   */
  rotate(newToken) {
    if (this.#session?.welcomed) {
      return this.#session.rotate(newToken).then(() => {
        this.token = newToken;
      });
    }
    if (this.state === 'connecting') {
      return Promise.reject(new Error('still connecting; try again when connected'));
    }
    this.token = newToken;
    if (this.#running) this.#wake?.();
    else this.start();
    return Promise.resolve();
  }

  #state(state, text) {
    this.state = state;
    this.#opts.onState(state, text);
  }

  async #loop() {
    let attempt = 0;
    let redirect = '';
    try {
      for (;;) {
        this.#state('connecting', 'connecting');
        const started = Date.now();
        const end = await this.#connect(redirect);
        redirect = '';
        if (end.permanent || PERMANENT.has(end.reason)) {
          this.#state('disconnected', `disconnected: ${end.why}`);
          return;
        }
        let wait;
        if (end.goaway) {
          // The relay spread the delays already: wait exactly, and start
          // the backoff over: the relay was fine, just leaving (§6.6, §8).
          wait = end.goaway.reconnectAfter;
          attempt = 0;
          if (validRedirect(end.goaway.redirect)) redirect = end.goaway.redirect;
        } else {
          if (end.welcomed && Date.now() - started >= STABLE_AFTER_MS) attempt = 0;
          wait = backoff(attempt++);
        }
        this.#state('disconnected', `disconnected: ${end.why}; reconnecting in ${seconds(wait)}`);
        await new Promise((resolve) => {
          this.#wake = resolve;
          setTimeout(resolve, wait);
        });
        this.#wake = null;
      }
    } finally {
      this.#running = false;
    }
  }

  /**
   * #connect runs one session to its end and says how it ended: {why,
   * reason?, permanent?, goaway?, welcomed}.
   */
  async #connect(redirect) {
    let options = {};
    if (typeof WebTransport === 'function') {
      try {
        const res = await fetch(this.#opts.configURL, { cache: 'no-store' });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        // The relay's UDP certificate may be self-signed and short-lived, and
        // change on restart: fetch its hashes before every attempt.
        const { certHashes = [] } = await res.json();
        if (certHashes.length) {
          options = { serverCertificateHashes: certHashes.map((h) => ({ algorithm: 'sha-256', value: base64ToBytes(h) })) };
        }
      } catch (err) {
        return { why: `cannot fetch ${this.#opts.configURL}: ${err.message}` };
      }
    }
    const url = redirect ? `https://${redirect}/connect` : this.#opts.connectURL;
    const dialed = await dial(url, options);
    if (!dialed.conn) return dialed;
    const name = TRANSPORTS[dialed.transport];
    const session = new Session(dialed.conn, this.token, this.#opts, () => {
      this.transport = dialed.transport;
      this.#state('connected', `connected over ${name}`);
    });
    this.#session = session;
    try {
      return await session.run();
    } finally {
      this.#session = null;
      this.transport = '';
    }
  }
}

/**
 * dial opens a WebTransport session to url (https://HOST/connect) and, when
 * WebTransport is missing, fails, or is not ready after a head start, a
 * WebSocket one to the same place as well (§2.5). The first ready is kept
 * and the other closed before either sent LOGIN, so the two never fight
 * over the token. Resolves to {conn, transport} or, when neither opens
 * within timeoutMs, {why}; it never rejects.
 */
export function dial(url, options, { headStartMs = HEAD_START_MS, timeoutMs = LOGIN_TIMEOUT_MS, WebTransport = globalThis.WebTransport, WebSocket = globalThis.WebSocket } = {}) {
  return new Promise((resolve) => {
    const pending = new Map(); // transport -> conn not yet ready
    const errors = [];
    let done = false;
    let wsStarted = false;
    const finish = (result) => {
      if (done) return;
      done = true;
      clearTimeout(headStart);
      clearTimeout(timeout);
      for (const conn of pending.values()) {
        if (conn !== result.conn) closeQuietly(conn);
      }
      resolve(result);
    };
    const failed = (transport, err) => {
      if (done) return;
      pending.delete(transport);
      errors.push(`${TRANSPORTS[transport]}: ${err?.message || err || 'failed'}`);
      if (!wsStarted) startWebSocket();
      else if (pending.size === 0) finish({ why: `cannot connect: ${errors.join('; ')}` });
    };
    const attempt = (transport, open) => {
      let conn;
      try {
        conn = open();
      } catch (err) {
        failed(transport, err);
        return;
      }
      pending.set(transport, conn);
      conn.closed.catch(() => {}); // a loser's end is nobody's business
      conn.ready.then(
        () => finish({ conn, transport }),
        (err) => failed(transport, err),
      );
    };
    const startWebSocket = () => {
      if (wsStarted) return;
      wsStarted = true;
      attempt('websocket', () => new WebSocketSession(url.replace(/^http/, 'ws'), { WebSocket }));
    };
    const headStart = setTimeout(startWebSocket, headStartMs);
    const timeout = setTimeout(() => finish({ why: `no connection in ${seconds(timeoutMs)}` }), timeoutMs);
    if (typeof WebTransport !== 'function') startWebSocket();
    else attempt('webtransport', () => new WebTransport(url, options));
  });
}

/** closeQuietly closes a session that may not be open yet. */
function closeQuietly(conn) {
  try {
    conn.close({ closeCode: wire.CloseNormal, reason: '' });
  } catch {
    // Not open, or already closed: either way it is going.
  }
}

/** Session is one session, WebTransport or WebSocketSession, from LOGIN to close. */
class Session {
  welcomed = false;

  #wt;
  #token;
  #opts;
  #onWelcome;
  #writer = null; // of the control stream; LOGIN and ROTATE are its only writes
  #rotation = null; // {resolve, reject} of the unanswered ROTATE
  #end = null; // how the session ended, when the control stream or a timer knew first
  #inflight = new Set(); // message handlers not yet done, for GOAWAY
  #limit = wire.MaxPayload; // MESSAGE payload limit: overhead + WELCOME.max_body once known
  #version = wire.Version; // the session's, from WELCOME

  constructor(wt, token, opts, onWelcome) {
    this.#wt = wt;
    this.#token = token;
    this.#opts = opts;
    this.#onWelcome = onWelcome;
  }

  /** run resolves with how the session ended; it never rejects. */
  async run() {
    // Handle closed at once: an unobserved rejection is a console error.
    const closed = this.#wt.closed.then(closeEnd, (err) => ({ why: err.message || 'connection lost' }));
    const timer = setTimeout(() => this.#close(wire.CloseNormal, '', { why: 'no answer to LOGIN in 10 s' }), LOGIN_TIMEOUT_MS);
    const control = (async () => {
      await this.#wt.ready;
      this.#acceptStreams();
      await this.#control(() => clearTimeout(timer));
    })();
    control.catch(() => {}); // once the session has closed, stream errors are expected noise
    let controlError = null;
    try {
      // A closed session ends the control stream too; racing closed means
      // not relying on every stream error arriving.
      await Promise.race([control, closed]);
    } catch (err) {
      if (resetByRelay(err)) {
        // The control stream is never reset (§7.4).
        this.#close(wire.CloseProtocol, CONTROL_RESET, { why: `protocol error: ${CONTROL_RESET}` });
      } else if (err instanceof ProtocolError || err instanceof wire.WireError) {
        this.#close(wire.CloseProtocol, err.message, { why: `protocol error: ${err.message}` });
      } else {
        controlError = err;
      }
    } finally {
      clearTimeout(timer);
    }
    // The control stream is over. If the relay closed the session, its close
    // says why better than the stream error does: give it a moment to land.
    const info = await Promise.race([closed, sleep(CLOSE_WAIT_MS).then(() => null)]);
    this.#close(wire.CloseNormal, '', null);
    const end = this.#end ?? info ?? {
      why: controlError ? controlError.message || 'connection lost' : 'relay ended the control stream',
    };
    this.#rotation?.reject(new Error('the connection ended before the relay answered; keeping the old token'));
    this.#rotation = null;
    return { ...end, welcomed: this.welcomed };
  }

  /** rotate sends ROTATE and resolves on ROTATED; one at a time (§6.4). */
  rotate(token) {
    if (this.#rotation) return Promise.reject(new Error('a rotation is already pending'));
    return new Promise((resolve, reject) => {
      this.#rotation = { resolve, reject };
      this.#writer.write(wire.encodeRotate({ token })).catch((err) => {
        this.#rotation = null;
        reject(new Error(`cannot send ROTATE: ${err.message}`));
        // The relay stopped reading the control stream (STOP_SENDING).
        if (resetByRelay(err)) this.#close(wire.CloseProtocol, CONTROL_RESET, { why: `protocol error: ${CONTROL_RESET}` });
      });
    });
  }

  /** #close closes the session once; end, if given, is how it ended. */
  #close(code, reason, end) {
    if (end && !this.#end) this.#end = end;
    try {
      this.#wt.close({ closeCode: code, reason: reason.slice(0, 1000) });
    } catch {
      // Already closed or failed: nothing to do.
    }
  }

  /** #control logs in and reads control frames until the session ends. */
  async #control(welcomed) {
    const { readable, writable } = await this.#wt.createBidirectionalStream();
    this.#writer = writable.getWriter();
    const frames = new wire.FrameReader(readable.getReader());
    await this.#writer.write(wire.encodeLogin({ version: wire.Version, token: this.#token, agent: AGENT }));

    const first = await frames.readFrame(wire.MaxControlPayload);
    if (!first) throw new ProtocolError('control stream ended before WELCOME');
    if (first.type === wire.FrameRefuse) {
      const r = wire.parseRefuse(first.payload);
      const reason = wire.reasonFromName(wire.reasonName(r.reason));
      // §6.2: hang up at once rather than make the relay wait.
      this.#close(wire.CloseNormal, '', { why: r.message ? `${reason} (${r.message})` : reason, reason });
      return;
    }
    wire.expect(first.type, wire.FrameWelcome);
    const w = wire.parseWelcome(first.payload);
    // The relay answers with the newest version both speak (§1).
    if (w.version > wire.Version) throw new ProtocolError(`WELCOME version ${w.version} above the ${wire.Version} offered`);
    if (w.version < wire.MinVersion) {
      const why = `relay speaks only version ${w.version}; this page needs ${wire.MinVersion}..${wire.Version}`;
      this.#close(wire.CloseNormal, '', { why, reason: 'unsupported_version', permanent: true });
      return;
    }
    this.#version = w.version;
    this.#limit = wire.messageOverhead(w.version) + w.maxBody;
    this.welcomed = true;
    welcomed();
    this.#onWelcome();

    for (;;) {
      const f = await frames.readFrame(wire.MaxControlPayload);
      // The relay ends its control stream only after REFUSE (§2.2).
      if (!f) throw new ProtocolError('relay ended the control stream');
      switch (f.type) {
        case wire.FrameRotated:
          wire.parseRotated(f.payload);
          this.#answerRotation(null);
          break;
        case wire.FrameRefuse: {
          const r = wire.parseRefuse(f.payload);
          const why = wire.reasonFromName(wire.reasonName(r.reason));
          this.#answerRotation(new Error(r.message ? `${why} (${r.message})` : why));
          break;
        }
        case wire.FrameGoAway:
          await this.#goAway(wire.parseGoAway(f.payload));
          return;
        default:
          throw new wire.WireError(wire.ErrUnexpected, `${wire.frameName(f.type)} on the control stream`);
      }
    }
  }

  /** #answerRotation settles the pending ROTATE; an answer with none pending breaks the protocol. */
  #answerRotation(err) {
    const r = this.#rotation;
    if (!r) throw new ProtocolError('rotation answer without ROTATE');
    this.#rotation = null;
    if (err) r.reject(err);
    else r.resolve();
  }

  /**
   * #goAway finishes the open messages, then ends the control stream and
   * lets the relay close once it has read every reply (§6.6): closing here
   * could drop replies still in flight. It closes with 0x4 itself only if
   * the relay does not.
   */
  async #goAway(g) {
    const reason = wire.reasonFromName(wire.reasonName(g.reason));
    this.#end = { why: g.message ? `${reason} (${g.message})` : reason, goaway: g };
    await Promise.race([Promise.allSettled([...this.#inflight]), sleep(DRAIN_MS)]);
    try {
      await this.#writer?.close();
    } catch {
      // The session is already going; the close below is harmless.
    }
    await Promise.race([this.#wt.closed.catch(() => {}), sleep(GOAWAY_LINGER_MS)]);
    this.#close(wire.CloseGoingAway, '', null);
  }

  /** #acceptStreams answers every message stream the relay opens, each on its own. */
  async #acceptStreams() {
    const streams = this.#wt.incomingBidirectionalStreams.getReader();
    try {
      for (;;) {
        const { value, done } = await streams.read();
        if (done) return;
        const p = this.#serve(value).finally(() => this.#inflight.delete(p));
        this.#inflight.add(p);
      }
    } catch {
      // The session closed; run() reports why.
    }
  }

  /** #serve reads one MESSAGE to the end of its stream and writes one REPLY (§6.3). */
  async #serve(stream) {
    const reader = stream.readable.getReader();
    let reply;
    try {
      reply = await this.#read(reader);
    } catch (err) {
      // The stream broke while reading: the relay gave up on it (reset) or
      // the session ended. Still try to answer; the write fails if no one
      // listens, which is expected (§6.3).
      reply = { status: 500, body: { error: `reading the message failed: ${err.message}`, code: 'device_error' } };
    }
    const json = JSON.stringify(reply.body);
    try {
      this.#opts.onReply(reply.status, json);
    } catch (err) {
      console.error('onReply:', err); // a page bug; the relay still gets its reply
    }
    const writer = stream.writable.getWriter();
    try {
      await writer.write(wire.encodeReply({ status: reply.status, body: utf8.encode(json) }));
      await writer.close();
    } catch (err) {
      console.debug('reply not delivered (the relay gave up on the message):', err.message);
    }
  }

  /** #read reads and handles one message, turning a bad stream into a 4xx reply. */
  async #read(reader) {
    const frames = new wire.FrameReader(reader);
    const bad = (code, error, status = 400) => {
      reader.cancel().catch(() => {});
      return { status, body: { error, code } };
    };
    let f;
    try {
      f = await frames.readFrame(this.#limit);
    } catch (err) {
      if (err.kind === wire.ErrTooLarge) return bad('too_large', err.message, 413);
      if (err instanceof wire.WireError) return bad('bad_frame', err.message);
      throw err;
    }
    if (!f) return bad('bad_frame', 'stream ended before a MESSAGE');
    if (f.type !== wire.FrameMessage) return bad('bad_frame', `got ${wire.frameName(f.type)}, want MESSAGE`);
    if (!(await frames.atEnd())) return bad('bad_frame', 'data after the MESSAGE');
    let msg;
    try {
      msg = wire.parseMessage(f.payload, this.#version);
    } catch (err) {
      return bad('bad_frame', err.message);
    }
    try {
      const { status, body } = this.#opts.onMessage(msg);
      return { status, body };
    } catch (err) {
      return { status: 500, body: { error: `the device failed: ${err.message}`, code: 'device_error' } };
    }
  }
}

/** closeEnd turns a WebTransport close {closeCode, reason} into an end (§7.3). */
function closeEnd(info) {
  const code = info?.closeCode ?? 0;
  const reason = info?.reason ?? '';
  switch (code) {
    case wire.CloseRefused: {
      const name = wire.reasonFromName(reason);
      return { why: `refused: ${name}`, reason: name };
    }
    case wire.CloseReplaced:
      return { why: 'replaced: another device logged in with this token' };
    case wire.CloseGoingAway:
      return { why: reason || 'relay going away' };
    case wire.CloseLoginTimeout:
      return { why: 'login timed out' };
    case wire.CloseProtocol:
      return { why: `protocol error: ${reason}` };
    default:
      return { why: reason ? `closed: ${reason}` : 'closed by the relay' };
  }
}
