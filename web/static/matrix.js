// The 32x8 LED matrix as data, and the drawing commands that paint it.
//
// A frame is frame[y][x] = [r, g, b]. Everything here is pure (no DOM), so
// that node can test it; display.js puts frames on the canvas.
//
// Draw bodies are checked in full before anything is drawn, so a bad
// command leaves the screen as it was. The rules follow the relay's own
// translator (awtrix/draw.go): AWTRIX 2 commands with "type", or AWTRIX 3
// primitives (one key of dp, dl, dr, df, dc, dfc, dt, db) passed through;
// every documented parameter required; coordinates, sizes and radii are
// integers in int16 range; colors [r,g,b] or "#RRGGBB".

import { drawText } from './font.js';

export const WIDTH = 32;
export const HEIGHT = 8;
export const BLACK = Object.freeze([0, 0, 0]);
export const WHITE = Object.freeze([255, 255, 255]);

const INT16_MIN = -32768;
const INT16_MAX = 32767;

/** newFrame returns a frame with every LED set to color. */
export function newFrame(color = BLACK) {
  return Array.from({ length: HEIGHT }, () => Array.from({ length: WIDTH }, () => [...color]));
}

/** copyFrame returns a deep copy, so that the back buffer can go on changing. */
export function copyFrame(f) {
  return f.map((row) => row.map((c) => [...c]));
}

/** setPixel sets one LED; coordinates off the matrix are clipped. */
export function setPixel(f, x, y, c) {
  if (x >= 0 && x < WIDTH && y >= 0 && y < HEIGHT) f[y][x] = [c[0], c[1], c[2]];
}

/** fillRect fills w x h at (x, y), clipped; it loops over the visible part only. */
export function fillRect(f, x, y, w, h, c) {
  for (let yy = Math.max(y, 0); yy < Math.min(y + h, HEIGHT); yy++) {
    for (let xx = Math.max(x, 0); xx < Math.min(x + w, WIDTH); xx++) setPixel(f, xx, yy, c);
  }
}

/** drawRect is Adafruit GFX's drawRect: a 1-pixel outline of w x h. */
export function drawRect(f, x, y, w, h, c) {
  if (w <= 0 || h <= 0) return;
  fillRect(f, x, y, w, 1, c);
  fillRect(f, x, y + h - 1, w, 1, c);
  fillRect(f, x, y, 1, h, c);
  fillRect(f, x + w - 1, y, 1, h, c);
}

/** drawLine is Bresenham's line as Adafruit GFX's writeLine draws it. */
export function drawLine(f, x0, y0, x1, y1, c) {
  const steep = Math.abs(y1 - y0) > Math.abs(x1 - x0);
  if (steep) [x0, y0, x1, y1] = [y0, x0, y1, x1];
  if (x0 > x1) [x0, x1, y0, y1] = [x1, x0, y1, y0];
  const dx = x1 - x0;
  const dy = Math.abs(y1 - y0);
  const ystep = y0 < y1 ? 1 : -1;
  let err = Math.trunc(dx / 2);
  for (; x0 <= x1; x0++) {
    if (steep) setPixel(f, y0, x0, c);
    else setPixel(f, x0, y0, c);
    err -= dy;
    if (err < 0) {
      y0 += ystep;
      err += dx;
    }
  }
}

/** drawCircle is the midpoint circle outline (Adafruit GFX's drawCircle). */
export function drawCircle(f, x0, y0, r, c) {
  let fd = 1 - r;
  let ddx = 1;
  let ddy = -2 * r;
  let x = 0;
  let y = r;
  setPixel(f, x0, y0 + r, c);
  setPixel(f, x0, y0 - r, c);
  setPixel(f, x0 + r, y0, c);
  setPixel(f, x0 - r, y0, c);
  while (x < y) {
    if (fd >= 0) {
      y--;
      ddy += 2;
      fd += ddy;
    }
    x++;
    ddx += 2;
    fd += ddx;
    for (const [px, py] of [[x, y], [-x, y], [x, -y], [-x, -y], [y, x], [-y, x], [y, -x], [-y, -x]]) {
      setPixel(f, x0 + px, y0 + py, c);
    }
  }
}

/** fillCircle is the filled midpoint circle (Adafruit GFX's fillCircle). */
export function fillCircle(f, x0, y0, r, c) {
  fillRect(f, x0, y0 - r, 1, 2 * r + 1, c);
  let fd = 1 - r;
  let ddx = 1;
  let ddy = -2 * r;
  let x = 0;
  let y = r;
  let px = x;
  let py = y;
  while (x < y) {
    if (fd >= 0) {
      y--;
      ddy += 2;
      fd += ddy;
    }
    x++;
    ddx += 2;
    fd += ddx;
    // Vertical spans left and right of the centre; the second pair fills
    // the columns the first skips when y steps.
    if (x < y + 1) {
      fillRect(f, x0 + x, y0 - y, 1, 2 * y + 1, c);
      fillRect(f, x0 - x, y0 - y, 1, 2 * y + 1, c);
    }
    if (y !== py) {
      fillRect(f, x0 + py, y0 - px, 1, 2 * px + 1, c);
      fillRect(f, x0 - py, y0 - px, 1, 2 * px + 1, c);
      py = y;
    }
    px = x;
  }
}

/** drawString draws text with its top-left corner at (x, y), clipped. */
export function drawString(f, x, y, s, c) {
  drawText(s, x, y, (px, py) => setPixel(f, px, py, c));
}

/** drawBitmap draws w x h pixels, row by row, each already [r,g,b]. */
export function drawBitmap(f, x, y, w, h, pixels) {
  for (let i = 0; i < w * h; i++) setPixel(f, x + (i % w), y + Math.floor(i / w), pixels[i]);
}

/**
 * rgb565 widens a 5-6-5 pixel to 8 bits a channel by bit replication, like
 * awtrix/draw.go: 0xFFFF is white, 0xF800 pure red. Negative values are the
 * int16 form of the same bits (AWTRIX 2 ran on Java shorts).
 */
export function rgb565(v) {
  const c = v & 0xffff;
  const r = (c >> 11) & 0x1f;
  const g = (c >> 5) & 0x3f;
  const b = c & 0x1f;
  return [(r << 3) | (r >> 2), (g << 2) | (g >> 4), (b << 3) | (b >> 2)];
}

/** rgb888 splits 0xRRGGBB. */
export function rgb888(v) {
  return [(v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff];
}

/** parseColor accepts [r,g,b] with integer components 0..255 or "#RRGGBB"; else null. */
export function parseColor(v) {
  if (typeof v === 'string') {
    return /^#[0-9a-fA-F]{6}$/.test(v) ? rgb888(parseInt(v.slice(1), 16)) : null;
  }
  if (Array.isArray(v) && v.length === 3 && v.every((n) => Number.isInteger(n) && n >= 0 && n <= 255)) {
    return [v[0], v[1], v[2]];
  }
  return null;
}

/** BadBody is a body the device refuses; its message goes to the caller. */
export class BadBody extends Error {
  constructor(message) {
    super(message);
    this.name = 'BadBody';
  }
}

const isInt16 = (n) => Number.isInteger(n) && n >= INT16_MIN && n <= INT16_MAX;

/**
 * Fields reads one AWTRIX 2 command's parameters, as the Go fields type
 * does, and throws a BadBody that names the command and the key.
 */
class Fields {
  constructor(cmd, where) {
    this.cmd = cmd;
    this.where = where;
  }

  fail(key, want) {
    throw new BadBody(`${this.where}: ${JSON.stringify(key)} must be ${want}`);
  }

  ints(key, n, lo, hi, want) {
    const v = this.cmd[key];
    if (!Array.isArray(v) || v.length !== n || !v.every((x) => Number.isInteger(x) && x >= lo && x <= hi)) {
      this.fail(key, want);
    }
    return v;
  }

  point(key) {
    return this.ints(key, 2, INT16_MIN, INT16_MAX, '[x,y] with integer coordinates');
  }

  size(key, min) {
    return this.ints(key, 2, min, INT16_MAX, `[width,height] with integers >= ${min}`);
  }

  radius(key) {
    const r = this.cmd[key];
    if (!Number.isInteger(r) || r < 0 || r > INT16_MAX) this.fail(key, 'an integer >= 0');
    return r;
  }

  str(key) {
    const s = this.cmd[key];
    if (typeof s !== 'string') this.fail(key, 'a string');
    return s;
  }

  color(key) {
    const c = parseColor(this.cmd[key]);
    if (!c) this.fail(key, '[r,g,b] with components 0..255 or "#RRGGBB"');
    return c;
  }

  /** bitmap reads w*h pixels; widen maps one integer to [r,g,b]. */
  bitmap(key, w, h, lo, hi, widen) {
    const v = this.cmd[key];
    if (!Array.isArray(v)) this.fail(key, 'an array of pixel integers');
    if (v.length !== w * h) this.fail(key, `${w * h} (width*height) pixels, not ${v.length}`);
    if (!v.every((x) => Number.isInteger(x) && x >= lo && x <= hi)) this.fail(key, `an array of integers ${lo}..${hi}`);
    return v.map(widen);
  }
}

/** command2 checks one AWTRIX 2 command and returns it as an op. */
function command2(cmd, where) {
  const type = cmd.type;
  if (typeof type !== 'string') throw new BadBody(`${where}: "type" must be a string`);
  const f = new Fields(cmd, `${where}: ${type}`);
  switch (type) {
    case 'fill':
      return { op: 'fill', c: f.color('color') };
    case 'pixel': {
      const [x, y] = f.point('position');
      return { op: 'pixel', x, y, c: f.color('color') };
    }
    case 'line': {
      const [x0, y0] = f.point('start');
      const [x1, y1] = f.point('end');
      return { op: 'line', x0, y0, x1, y1, c: f.color('color') };
    }
    case 'rect': {
      const [x, y] = f.point('position');
      const [w, h] = f.size('size', 0);
      return { op: 'rect', x, y, w, h, c: f.color('color') };
    }
    case 'circle': {
      const [x, y] = f.point('position');
      return { op: 'circle', x, y, r: f.radius('radius'), c: f.color('color') };
    }
    case 'text': {
      const [x, y] = f.point('position');
      return { op: 'text', x, y, s: f.str('string'), c: f.color('color') };
    }
    case 'bmp': {
      const [x, y] = f.point('position');
      const [w, h] = f.size('size', 1);
      return { op: 'bitmap', x, y, w, h, px: f.bitmap('data', w, h, INT16_MIN, 0xffff, rgb565) };
    }
    case 'show':
    case 'clear':
    case 'exit':
    case 'wait':
      return { op: type };
    default:
      throw new BadBody(`${where}: unknown command type ${JSON.stringify(type.slice(0, 32))}`);
  }
}

/**
 * primitive3 checks one AWTRIX 3 drawing instruction, {"dp":[x,y,C]} and so
 * on (awtrix3 docs/api.md, "Drawing Instructions"), and returns it as an op.
 */
function primitive3(key, args, where) {
  const fail = (want) => {
    throw new BadBody(`${where}: ${JSON.stringify(key)} must be ${want}`);
  };
  if (!Array.isArray(args)) fail('an array');
  const ints = (from, n, min) => {
    const v = args.slice(from, from + n);
    if (v.length !== n || !v.every((x) => isInt16(x) && x >= min)) fail(`${n} integers at ${from}..${from + n - 1}`);
    return v;
  };
  const color = (i) => parseColor(args[i]) ?? fail(`a color ([r,g,b] or "#RRGGBB") at ${i}`);
  const arity = { dp: 3, dl: 5, dr: 5, df: 5, dc: 4, dfc: 4, dt: 4, db: 5 }[key];
  if (args.length !== arity) fail(`${arity} arguments`);
  switch (key) {
    case 'dp': {
      const [x, y] = ints(0, 2, INT16_MIN);
      return { op: 'pixel', x, y, c: color(2) };
    }
    case 'dl': {
      const [x0, y0, x1, y1] = ints(0, 4, INT16_MIN);
      return { op: 'line', x0, y0, x1, y1, c: color(4) };
    }
    case 'dr':
    case 'df': {
      const [x, y] = ints(0, 2, INT16_MIN);
      const [w, h] = ints(2, 2, 0);
      return { op: key === 'dr' ? 'rect' : 'fillrect', x, y, w, h, c: color(4) };
    }
    case 'dc':
    case 'dfc': {
      const [x, y] = ints(0, 2, INT16_MIN);
      const [r] = ints(2, 1, 0);
      return { op: key === 'dc' ? 'circle' : 'fillcircle', x, y, r, c: color(3) };
    }
    case 'dt': {
      const [x, y] = ints(0, 2, INT16_MIN);
      if (typeof args[2] !== 'string') fail('a string at 2');
      return { op: 'text', x, y, s: args[2], c: color(3) };
    }
    case 'db': {
      const [x, y] = ints(0, 2, INT16_MIN);
      const [w, h] = ints(2, 2, 1);
      const px = args[4];
      if (!Array.isArray(px) || px.length !== w * h || !px.every((v) => Number.isInteger(v) && v >= 0 && v <= 0xffffff)) {
        fail(`${w * h} (width*height) RGB888 integers at 4`);
      }
      return { op: 'bitmap', x, y, w, h, px: px.map(rgb888) };
    }
  }
  return fail('a known primitive'); // unreachable: key comes from PRIMITIVES3
}

const PRIMITIVES3 = new Set(['dp', 'dl', 'dr', 'df', 'dc', 'dfc', 'dt', 'db']);

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * parseDraw checks a draw body, {"draw":[...]} or a bare array of commands,
 * and returns its ops. It throws BadBody on the first bad command.
 */
export function parseDraw(body) {
  const list = Array.isArray(body) ? body : isObject(body) && Array.isArray(body.draw) ? body.draw : null;
  if (!list) throw new BadBody('draw: body must be {"draw":[...]} or an array of commands');
  if (list.length === 0) throw new BadBody('draw: no commands');
  return list.map((cmd, i) => {
    const where = `draw[${i}]`;
    if (!isObject(cmd)) throw new BadBody(`${where}: command must be a JSON object`);
    if ('type' in cmd) return command2(cmd, where);
    const keys = Object.keys(cmd);
    if (keys.length !== 1 || !PRIMITIVES3.has(keys[0])) {
      throw new BadBody(`${where}: neither an AWTRIX 2 command ("type") nor one AWTRIX 3 primitive (dp, dl, dr, df, dc, dfc, dt, db)`);
    }
    return primitive3(keys[0], cmd[keys[0]], where);
  });
}

/** paint applies one drawing op to frame f. */
function paint(f, o) {
  switch (o.op) {
    case 'fill': return fillRect(f, 0, 0, WIDTH, HEIGHT, o.c);
    case 'pixel': return setPixel(f, o.x, o.y, o.c);
    case 'line': return drawLine(f, o.x0, o.y0, o.x1, o.y1, o.c);
    case 'rect': return drawRect(f, o.x, o.y, o.w, o.h, o.c);
    case 'fillrect': return fillRect(f, o.x, o.y, o.w, o.h, o.c);
    case 'circle': return drawCircle(f, o.x, o.y, o.r, o.c);
    case 'fillcircle': return fillCircle(f, o.x, o.y, o.r, o.c);
    case 'text': return drawString(f, o.x, o.y, o.s, o.c);
    case 'bitmap': return drawBitmap(f, o.x, o.y, o.w, o.h, o.px);
  }
}

/**
 * runDraw executes ops the way an AWTRIX 2 clock does: commands paint a
 * back buffer that starts black, "show" commits it to the screen, "clear"
 * blacks it out, "exit" ends the list; the end of the list shows what was
 * drawn since the last "show". "wait" is not honoured: the reply must not
 * wait for an animation (the relay gives a device 5 s), so an animation
 * ends on its last frame at once, as in the relay's AWTRIX 3 translation.
 * It returns the frame to display and the number of frames shown.
 */
export function runDraw(ops) {
  let back = newFrame();
  let front = null;
  let frames = 0;
  let dirty = false; // drawn since the last show
  const show = () => {
    front = copyFrame(back);
    frames++;
    dirty = false;
  };
  for (const o of ops) {
    if (o.op === 'exit') break;
    if (o.op === 'wait') continue;
    if (o.op === 'show') {
      show();
    } else if (o.op === 'clear') {
      back = newFrame();
      dirty = true;
    } else {
      paint(back, o);
      dirty = true;
    }
  }
  if (dirty || front === null) show();
  return { frame: front, frames };
}
