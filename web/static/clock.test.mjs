// The virtual clock's AWTRIX 3 modes and reads, without a browser.
// Run: node --test web/static/clock.test.mjs

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VirtualClock, kelvinToRGB } from './clock.js';
import { newFrame } from './matrix.js';

const enc = new TextEncoder();
const body = (v) => (v === undefined ? new Uint8Array(0) : enc.encode(typeof v === 'string' ? v : JSON.stringify(v)));

/** fixture is a clock whose screen is compose(drawn) and whose time the test sets. */
function fixture() {
  let now = 1_000_000;
  let drawn = newFrame();
  const clock = new VirtualClock({ screen: () => clock.compose(drawn), now: () => now });
  return {
    clock,
    send: (mode, v, query = '') => {
      const r = clock.handle(mode, body(v), query);
      if (r.show?.kind === 'frame') drawn = r.show.frame;
      if (r.show?.kind === 'clear') drawn = newFrame();
      return r;
    },
    advance: (ms) => {
      now += ms;
    },
    shown: () => clock.compose(drawn),
  };
}

test('indicators light their corner pixels, and go off', () => {
  const { send, shown } = fixture();
  assert.equal(send('indicator1', { color: [255, 0, 0] }).status, 200);
  assert.equal(send('indicator2', { color: '#00FF00', blink: 500 }).status, 200);
  assert.equal(send('indicator3', { color: [0, 0, 255], fade: 1000 }).status, 200);
  const f = shown();
  for (const [x, y] of [[31, 0], [30, 0], [31, 1]]) assert.deepEqual(f[y][x], [255, 0, 0]);
  for (const [x, y] of [[31, 3], [31, 4]]) assert.deepEqual(f[y][x], [0, 255, 0]);
  for (const [x, y] of [[31, 7], [30, 7], [31, 6]]) assert.deepEqual(f[y][x], [0, 0, 255]);
  assert.deepEqual(f[2][31], [0, 0, 0]);
  send('indicator1'); // an empty body hides it
  send('indicator2', { color: '0' });
  send('indicator3', { color: [0, 0, 0] });
  assert.ok(shown().every((row) => row.every((c) => c.every((v) => v === 0))));
  assert.equal(send('indicator1', { color: [300, 0, 0] }).body.code, 'bad_body');
});

test('the mood light tints the whole matrix, indicators on top', () => {
  const { send, shown } = fixture();
  send('indicator1', { color: [255, 0, 0] });
  send('moodlight', { brightness: 255, color: [10, 20, 30] });
  let f = shown();
  assert.deepEqual(f[4][10], [10, 20, 30]);
  assert.deepEqual(f[0][31], [255, 0, 0]);
  send('moodlight', { brightness: 128, kelvin: 2300 });
  const [r, g, b] = shown()[4][10];
  assert.ok(r > g && g > b && r <= 128, `2300 K at half brightness is a dim warm white: ${[r, g, b]}`);
  send('moodlight');
  f = shown();
  assert.deepEqual(f[4][10], [0, 0, 0]);
  assert.deepEqual(kelvinToRGB(6600), [255, 255, 255]);
  const [wr, , wb] = kelvinToRGB(2300);
  assert.ok(wr === 255 && wb < 100, 'a warm white is red-heavy');
});

test('sleep and power off darken the screen; sleep ends by itself', () => {
  const { send, shown, advance, clock } = fixture();
  send('notify', { text: 'Hi', color: [255, 0, 0] });
  const lit = () => shown().some((row) => row.some((c) => c.some((v) => v > 0)));
  assert.ok(!lit(), 'text is drawn by the display, not by modes; this frame is the drawn one');
  send('draw', { draw: [{ type: 'fill', color: [9, 9, 9] }] });
  assert.ok(lit());
  assert.equal(send('sleep', { sleep: 2 }).status, 200);
  assert.ok(!lit() && clock.dark);
  advance(2001);
  assert.ok(lit() && !clock.dark);
  send('power', false);
  assert.ok(!lit());
  assert.equal(clock.read('stats').matrix, false);
  send('power', { power: true });
  assert.ok(lit());
  assert.equal(send('sleep', { sleep: 'long' }).body.code, 'bad_body');
});

test('sounds are noted for the page to show', () => {
  const { send, clock } = fixture();
  assert.deepEqual(send('sound', { sound: 'alarm' }).body, { ok: true, mode: 'sound', sound: 'alarm' });
  assert.deepEqual(clock.sound.kind + ':' + clock.sound.what, 'sound:alarm');
  send('rtttl', '"tetris:d=4,o=5,b=160:e6"'); // the relay sends text/plain as a JSON string
  assert.equal(clock.sound.what, 'tetris:d=4,o=5,b=160:e6');
  send('r2d2', { r2d2: 'Hello' });
  assert.equal(clock.sound.kind, 'r2d2');
  assert.equal(send('sound', {}).body.code, 'bad_body');
});

test('dismiss clears the drawing', () => {
  const { send } = fixture();
  assert.deepEqual(send('dismiss').show, { kind: 'clear' });
});

test('reads answer as AWTRIX 3 does', () => {
  const { send, clock } = fixture();
  send('indicator2', { color: [1, 2, 3] });
  send('draw', { draw: [{ type: 'pixel', position: [0, 0], color: [255, 255, 255] }] });
  const stats = send('stats').body;
  for (const k of ['bat', 'lux', 'ram', 'bri', 'uptime', 'wifi_signal', 'messages', 'version', 'indicator1', 'app', 'uid', 'matrix', 'ip_address']) {
    assert.ok(k in stats, `stats has ${k}`);
  }
  assert.equal(stats.indicator2, true);
  assert.equal(stats.indicator1, false);
  assert.equal(stats.messages, 3);
  assert.equal(stats.app, 'Notification');
  const screen = send('screen').body;
  assert.equal(screen.length, 256);
  assert.equal(screen[0], 0xffffff, 'top left first');
  assert.equal(screen[3 * 32 + 31], 0x010203, 'indicator 2 at (31,3), row by row');
  assert.deepEqual(send('loop').body, { Time: 0, Date: 1, Temperature: 2, Humidity: 3, Battery: 4 });
  assert.deepEqual(send('effects').body, []);
  send('settings', { BRI: 40 });
  assert.equal(send('settings').body.BRI, 40, 'settings without a body is a read');
  assert.equal(clock.read('stats').bri, 40);
});

test('custom apps by name, pages and deletion', () => {
  const { send } = fixture();
  assert.equal(send('custom', { text: 'x' }).status, 400, 'needs ?name=');
  assert.equal(send('custom', [{ text: '1' }, { text: '2' }], 'name=weather').status, 200);
  assert.deepEqual(send('apps').body.map((a) => a.name).slice(-2), ['weather0', 'weather1']);
  assert.equal(send('stats').body.app, 'weather0');
  send('custom', undefined, 'name=weather');
  assert.ok(!send('apps').body.some((a) => a.name.startsWith('weather')));
});

test('destructive modes are refused; bodies that are not JSON too', () => {
  const { send } = fixture();
  for (const m of ['erase', 'resetSettings', 'doupdate']) assert.equal(send(m).status, 403);
  assert.equal(send('notify', 'not json').body.code, 'bad_body');
  assert.equal(send('notify').body.code, 'bad_body');
  assert.equal(send('nextapp').status, 200);
  assert.equal(send('nope', {}).body.code, 'unknown_mode');
});
