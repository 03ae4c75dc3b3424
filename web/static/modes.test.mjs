// What the virtual clock draws and answers, without a browser: font.js,
// matrix.js and modes.js are pure. Run: node --test web/static/modes.test.mjs

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GLYPH_HEIGHT, chars, glyph, textColumns, textWidth } from './font.js';
import { HEIGHT, WIDTH, drawCircle, newFrame, parseDraw, rgb565, runDraw } from './matrix.js';
import { handleMessage } from './modes.js';

const enc = new TextEncoder();
const send = (mode, body) => handleMessage(mode, enc.encode(typeof body === 'string' ? body : JSON.stringify(body)));
const lit = (f) => f.flatMap((row, y) => row.flatMap((c, x) => (c.some((v) => v) ? [`${x},${y}`] : [])));

test('font covers ASCII 32..126 with 5-row glyphs', () => {
  const want = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i));
  assert.deepEqual(chars().sort(), want.sort());
  for (const ch of want) {
    const g = glyph(ch);
    assert.equal(g.rows.length, GLYPH_HEIGHT, ch);
    assert.ok(g.rows.every((r) => r.length === g.width), `${ch}: ragged rows`);
    assert.ok(g.width >= 1 && g.width <= 5, ch);
  }
  assert.equal(glyph('é'), glyph('?'));
  assert.equal(textWidth(''), 0);
  assert.equal(textWidth('A'), 3);
  assert.equal(textWidth('AB'), 7);
  assert.equal(textColumns('Hello').length, textWidth('Hello'));
});

test('notify shows text, centred when it fits', () => {
  const r = send('notify', { text: 'Hello', color: [255, 0, 0] });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { ok: true, rendered: 'text', text: 'Hello', scrolling: false });
  assert.deepEqual(r.show, { kind: 'text', text: 'Hello', color: [255, 0, 0], scrolling: false });
  assert.deepEqual(send('app', { text: 'x', color: '#00FF80' }).show.color, [0, 255, 128]);
  assert.deepEqual(send('customapp', { text: 'x' }).show.color, [255, 255, 255]);
  const long = send('temporaryapp', { name: 't', text: 'Totally Awesome' });
  assert.equal(long.body.scrolling, true);
  assert.deepEqual(send('notify', { icon: 1 }).body, { ok: true, rendered: 'none', mode: 'notify' });
});

test('bad bodies get 400 bad_body', () => {
  for (const [mode, body] of [
    ['notify', '[1,2]'],
    ['notify', '"text"'],
    ['notify', 'not json'],
    ['notify', { text: 'x', color: [256, 0, 0] }],
    ['notify', { text: { a: 1 } }],
    ['settings', 'null'],
    ['draw', { draw: [] }],
    ['draw', { nodraw: 1 }],
    ['draw', { draw: [{ type: 'pixel', position: [1], color: [1, 2, 3] }] }],
    ['draw', { draw: [{ type: 'fill', color: [1, 2, 3] }, { type: 'spin' }] }],
    ['draw', { draw: [{ dp: [1, 2] }] }],
    ['draw', { draw: [{ type: 'bmp', position: [0, 0], size: [2, 2], data: [1, 2, 3] }] }],
    ['draw', { draw: [{ type: 'circle', position: [0, 0], radius: -1, color: [1, 2, 3] }] }],
  ]) {
    const r = send(mode, body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.body.code, 'bad_body');
    assert.equal(typeof r.body.error, 'string');
    assert.equal(r.show, null);
  }
  assert.equal(send('draw', { draw: [{}, 1] }).body.error, 'draw[0]: neither an AWTRIX 2 command ("type") nor one AWTRIX 3 primitive (dp, dl, dr, df, dc, dfc, dt, db)');
  assert.equal(send('draw', { draw: [{ type: 'line', start: [0, 0], color: [1, 1, 1] }] }).body.error, 'draw[0]: line: "end" must be [x,y] with integer coordinates');
});

test('unknown modes get 400, settings and basics an ack', () => {
  assert.deepEqual(send('dance', {}).body, { error: 'unknown mode "dance"', code: 'unknown_mode' });
  assert.deepEqual(send('settings', { Brightness: 100 }).body, { ok: true, rendered: 'none', mode: 'settings', keys: ['Brightness'] });
  assert.equal(send('basics', { power: true }).status, 200);
});

test('draw: the AWTRIX 2 reference example', () => {
  const r = send('draw', {
    repeat: 2,
    draw: [
      { type: 'fill', color: [100, 100, 100] },
      { type: 'text', string: 'Hello', position: [0, 0], color: [255, 0, 0] },
      { type: 'show' },
    ],
  });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { ok: true, rendered: 'draw', commands: 3, frames: 1 });
  const f = r.show.frame;
  assert.deepEqual(f[0][0], [255, 0, 0], 'H top-left');
  assert.deepEqual(f[0][1], [100, 100, 100], 'inside H');
  assert.deepEqual(f[7][31], [100, 100, 100]);
});

test('draw primitives land where they should, clipped', () => {
  const red = [255, 0, 0];
  const { frame } = runDraw(parseDraw([
    { type: 'pixel', position: [31, 7], color: red },
    { type: 'pixel', position: [32, 0], color: red },
    { type: 'pixel', position: [-1, 3], color: red },
    { type: 'line', start: [0, 0], end: [3, 3], color: red },
  ]));
  assert.deepEqual(lit(frame), ['0,0', '1,1', '2,2', '3,3', '31,7']);

  const rect = runDraw(parseDraw([{ type: 'rect', position: [10, 2], size: [3, 3], color: red }])).frame;
  assert.deepEqual(lit(rect), ['10,2', '11,2', '12,2', '10,3', '12,3', '10,4', '11,4', '12,4']);

  const circle = newFrame();
  drawCircle(circle, 4, 4, 2, red);
  assert.deepEqual(lit(circle).sort(), ['2,3', '2,4', '2,5', '3,2', '3,6', '4,2', '4,6', '5,2', '5,6', '6,3', '6,4', '6,5'].sort());

  const bmp = runDraw(parseDraw([{ type: 'bmp', position: [30, 6], size: [3, 1], data: [0xf800, 0x07e0, -1] }])).frame;
  assert.deepEqual(bmp[6][30], [255, 0, 0]);
  assert.deepEqual(bmp[6][31], [0, 255, 0]);

  const big = runDraw(parseDraw([{ type: 'circle', position: [0, 0], radius: 32767, color: red }, { type: 'line', start: [-32768, 0], end: [32767, 0], color: red }]));
  assert.equal(big.frame.length, HEIGHT);
});

test('draw: back buffer, show, clear and exit', () => {
  const c = [9, 9, 9];
  // clear after show: the end of the list shows the cleared buffer.
  let r = runDraw(parseDraw([{ type: 'fill', color: c }, { type: 'show' }, { type: 'clear' }]));
  assert.equal(r.frames, 2);
  assert.deepEqual(lit(r.frame), []);
  // exit ends the list: nothing after it is drawn.
  r = runDraw(parseDraw([{ type: 'pixel', position: [0, 0], color: c }, { type: 'exit' }, { type: 'fill', color: c }]));
  assert.deepEqual(lit(r.frame), ['0,0']);
  // wait is accepted and does not delay.
  r = runDraw(parseDraw([{ type: 'fill', color: c }, { type: 'wait', ms: 100000 }]));
  assert.deepEqual(r.frame[HEIGHT - 1][WIDTH - 1], c);
});

test('draw: AWTRIX 3 primitives', () => {
  const { frame } = runDraw(parseDraw({ draw: [{ df: [0, 0, 2, 2, '#0000FF'] }, { dp: [5, 5, [1, 2, 3]] }, { db: [6, 6, 1, 1, [0x123456]] }] }));
  assert.deepEqual(lit(frame), ['0,0', '1,0', '0,1', '1,1', '5,5', '6,6']);
  assert.deepEqual(frame[6][6], [0x12, 0x34, 0x56]);
});

test('rgb565 widens by bit replication', () => {
  assert.deepEqual(rgb565(0xffff), [255, 255, 255]);
  assert.deepEqual(rgb565(0xf800), [255, 0, 0]);
  assert.deepEqual(rgb565(-2048), [255, 0, 0]); // 0xF800 as a Java short
  assert.deepEqual(rgb565(0x001f), [0, 0, 255]);
});
