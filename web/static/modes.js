// What the virtual clock does with each mode's body, and what it answers.
//
// handleMessage is pure: it returns the reply and what to show, and
// display.js shows it. Replies are JSON for the webhook caller: 200 with
// what was rendered, 400 {"error","code":"bad_body"} for a body the clock
// cannot use, 400 "unknown_mode" for a mode it does not know (PROTOCOL.md
// §4.7 asks for a 4xx rather than a stream reset).

import { textWidth } from './font.js';
import { BadBody, WHITE, WIDTH, parseColor, parseDraw, runDraw } from './matrix.js';

/** Modes whose body carries text to show (AWTRIX 2 notify and apps). */
const TEXT_MODES = new Set(['notify', 'app', 'customapp', 'temporaryapp']);
/** Modes that change clock settings: nothing to draw, only an acknowledgement. */
const ACK_MODES = new Set(['basics', 'settings']);

/** Replies echo at most this much text, keeping them far below the 64 KiB REPLY limit. */
const MAX_ECHO = 256;
const MAX_KEYS = 32;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** badBody is the one shape of a refused body. */
export function badBody(message) {
  return { status: 400, body: { error: message, code: 'bad_body' }, show: null };
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * handleMessage returns {status, body, show} for one MESSAGE: body is the
 * reply object; show is null, {kind:"frame", frame} or {kind:"text", text,
 * color, scrolling}.
 */
export function handleMessage(mode, bytes) {
  let value;
  try {
    value = JSON.parse(utf8.decode(bytes));
  } catch {
    return badBody('body is not valid JSON');
  }
  try {
    if (mode === 'draw') return draw(value);
    if (TEXT_MODES.has(mode)) return text(mode, value);
    if (ACK_MODES.has(mode)) return ack(mode, value);
  } catch (err) {
    if (err instanceof BadBody) return badBody(err.message);
    throw err;
  }
  return { status: 400, body: { error: `unknown mode ${JSON.stringify(mode)}`, code: 'unknown_mode' }, show: null };
}

function draw(value) {
  const ops = parseDraw(value);
  const { frame, frames } = runDraw(ops);
  return { status: 200, body: { ok: true, rendered: 'draw', commands: ops.length, frames }, show: { kind: 'frame', frame } };
}

/** text shows body.text in body.color; a body without text changes nothing. */
function text(mode, value) {
  if (!isObject(value)) throw new BadBody('body must be a JSON object');
  const color = value.color === undefined ? [...WHITE] : parseColor(value.color);
  if (!color) throw new BadBody('"color" must be [r,g,b] with components 0..255 or "#RRGGBB"');
  if (value.text === undefined || value.text === null) {
    return { status: 200, body: { ok: true, rendered: 'none', mode }, show: null };
  }
  if (typeof value.text !== 'string' && typeof value.text !== 'number') {
    throw new BadBody('"text" must be a string');
  }
  const s = String(value.text);
  const scrolling = textWidth(s) > WIDTH;
  return {
    status: 200,
    body: { ok: true, rendered: 'text', text: echo(s), scrolling },
    show: { kind: 'text', text: s, color, scrolling },
  };
}

/** ack answers settings and basics with the keys it received. */
function ack(mode, value) {
  if (!isObject(value)) throw new BadBody('body must be a JSON object');
  return { status: 200, body: { ok: true, rendered: 'none', mode, keys: Object.keys(value).slice(0, MAX_KEYS).map(echo) }, show: null };
}

/** echo cuts what the reply repeats back, by code points so as not to split a pair. */
function echo(s) {
  const cps = [...s];
  return cps.length > MAX_ECHO ? cps.slice(0, MAX_ECHO).join('') + '…' : s;
}
