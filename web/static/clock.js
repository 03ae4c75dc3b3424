// The virtual clock's state beyond what it shows: AWTRIX 3's indicators,
// mood light, power and sleep, sounds, settings and custom apps, and its
// reads (stats, screen, loop, ...), as the firmware answers them
// (Blueforcer/awtrix3, src/DisplayManager.cpp).
//
// VirtualClock has no DOM: display.js paints compose(frame) of whatever
// modes.js renders, and the page's reads get screen() from what is painted.
// Run its tests with: node --test web/static/clock.test.mjs

import { copyFrame, newFrame, parseColor } from './matrix.js';
import { badBody, handleMessage } from './modes.js';

/** Modes that read the clock: answered with its JSON, never drawn. */
const READS = new Set(['stats', 'screen', 'loop', 'effects', 'transitions']);
/** Modes the virtual clock takes note of and acknowledges. */
const ACKS = new Set(['basics', 'switch', 'nextapp', 'previousapp', 'reorder', 'reboot']);
/** Modes it refuses, as the reference agent does without --allow-destructive. */
const DESTRUCTIVE = new Set(['erase', 'resetSettings', 'doupdate']);

// The pixels of the three indicators (MatrixDisplayUi::drawIndicators).
const INDICATOR_PIXELS = [
  [[31, 0], [30, 0], [31, 1]],
  [[31, 3], [31, 4]],
  [[31, 7], [30, 7], [31, 6]],
];

const MAX_SLEEP_S = 24 * 3600;
const utf8 = new TextDecoder('utf-8', { fatal: true });
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/** kelvinToRGB is the usual fit of a black body's color (Tanner Helland's). */
export function kelvinToRGB(k) {
  const t = Math.min(Math.max(k, 1000), 40000) / 100;
  const clamp = (v) => Math.round(Math.min(Math.max(v, 0), 255));
  const r = t <= 66 ? 255 : clamp(329.698727446 * (t - 60) ** -0.1332047592);
  const g = t <= 66 ? clamp(99.4708025861 * Math.log(t) - 161.1195681661) : clamp(288.1221695283 * (t - 60) ** -0.0755148492);
  const b = t >= 66 ? 255 : t <= 19 ? 0 : clamp(138.5177312231 * Math.log(t - 10) - 305.0447927307);
  return [r, g, b];
}

export class VirtualClock {
  indicators = [null, null, null]; // {color, blink, fade} or null
  mood = null; // [r,g,b] or null
  power = true;
  sleepUntil = 0; // ms since the epoch; dark until then
  sound = null; // {kind, what, at}: the last sound asked for
  settings = { BRI: 255, ATIME: 7, TEFF: 1, UPPERCASE: true };
  apps = ['Time', 'Date', 'Temperature', 'Humidity', 'Battery'];
  app = 'Time';
  messages = 0;
  #now;
  #screen;
  #started;

  /**
   * screen() returns the frame on the canvas; now() the time in ms since
   * the epoch (tests pass their own).
   */
  constructor({ screen = () => newFrame(), now = () => Date.now() } = {}) {
    this.#screen = screen;
    this.#now = now;
    this.#started = now();
  }

  /** dark reports whether the matrix is off or asleep. */
  get dark() {
    return !this.power || this.#now() < this.sleepUntil;
  }

  /**
   * handle answers one message: {status, body, show}, where show is what
   * display.js draws (null: the drawing stays; {kind:"clear"} blanks it).
   */
  handle(mode, bytes, query = '') {
    this.messages++;
    let value;
    if (bytes.length > 0) {
      try {
        value = JSON.parse(utf8.decode(bytes));
      } catch {
        return badBody('body is not valid JSON');
      }
    }
    if (READS.has(mode) || ((mode === 'settings' || mode === 'apps') && value === undefined)) {
      return { status: 200, body: this.read(mode), show: null };
    }
    if (DESTRUCTIVE.has(mode)) {
      return { status: 403, body: { error: 'the virtual clock refuses erase, resetSettings and doupdate', code: 'forbidden' }, show: null };
    }
    const ack = (extra = {}) => ({ status: 200, body: { ok: true, mode, ...extra }, show: null });
    switch (mode) {
      case 'indicator1':
      case 'indicator2':
      case 'indicator3':
        return this.#indicator(Number(mode.at(-1)) - 1, value, ack);
      case 'moodlight':
        return this.#moodlight(value, ack);
      case 'power':
        return this.#power(value, ack);
      case 'sleep': {
        const s = isObject(value) ? value.sleep : value;
        if (!Number.isInteger(s) || s < 0) return badBody('"sleep" must be a number of seconds');
        this.sleepUntil = this.#now() + Math.min(s, MAX_SLEEP_S) * 1000;
        return ack({ sleep: s });
      }
      case 'sound':
      case 'rtttl':
      case 'r2d2': {
        const what = isObject(value) ? value[mode] : value;
        if ((typeof what !== 'string' || what === '') && !Number.isInteger(what)) return badBody(`${mode}: say what to play`);
        this.sound = { kind: mode, what: String(what).slice(0, 64), at: this.#now() };
        return ack({ [mode]: this.sound.what });
      }
      case 'dismiss':
        return { status: 200, body: { ok: true, mode }, show: { kind: 'clear' } };
      case 'settings':
        if (!isObject(value)) return badBody('body must be a JSON object');
        Object.assign(this.settings, value);
        if (Number.isInteger(value.BRI)) this.settings.BRI = Math.min(Math.max(value.BRI, 0), 255);
        return ack({ keys: Object.keys(value).slice(0, 32) });
      case 'apps':
        return ack();
      case 'custom':
        return this.#custom(new URLSearchParams(query).get('name'), value);
    }
    if (ACKS.has(mode)) return ack();
    if (value === undefined) return badBody(`${mode} needs a JSON body`);
    const r = handleMessage(mode, bytes);
    if (r.status === 200 && r.show) this.app = mode === 'notify' || mode === 'draw' ? 'Notification' : String(value.name ?? mode);
    return r;
  }

  /** read answers a read mode with JSON shaped as AWTRIX 3's. */
  read(mode) {
    switch (mode) {
      case 'stats':
        return {
          bat: 100, bat_raw: 1023, type: 0, lux: 0, ldr_raw: 0, ram: 0, bri: this.settings.BRI,
          uptime: Math.floor((this.#now() - this.#started) / 1000), wifi_signal: 0, messages: this.messages,
          version: 'virtual', indicator1: this.indicators[0] !== null, indicator2: this.indicators[1] !== null,
          indicator3: this.indicators[2] !== null, app: this.app, uid: 'virtual-awtrix', matrix: this.power, ip_address: '0.0.0.0',
        };
      case 'screen':
        // ledsAsJson: 0xRRGGBB integers, row by row from the top left.
        return this.#screen().flatMap((row) => row.map(([r, g, b]) => (r << 16) | (g << 8) | b));
      case 'loop':
        return Object.fromEntries(this.apps.map((a, i) => [a, i]));
      case 'apps':
        return this.apps.map((name) => ({ name }));
      case 'settings':
        return { ...this.settings };
      case 'effects':
      case 'transitions':
        return []; // the virtual clock draws no effects or transitions
    }
    return {};
  }

  /**
   * compose is what the matrix shows for a drawn frame: black while off or
   * asleep, the mood light's color over everything, the indicators on top.
   */
  compose(frame) {
    if (this.dark) return newFrame();
    const f = this.mood ? newFrame(this.mood) : copyFrame(frame);
    this.indicators.forEach((ind, i) => {
      if (ind) for (const [x, y] of INDICATOR_PIXELS[i]) f[y][x] = [...ind.color];
    });
    return f;
  }

  #indicator(i, value, ack) {
    if (value === undefined || (isObject(value) && Object.keys(value).length === 0)) {
      this.indicators[i] = null;
      return ack({ indicator: 'off' });
    }
    if (!isObject(value)) return badBody('body must be {"color":[r,g,b]} or empty');
    const off = value.color === '0' || (Array.isArray(value.color) && value.color.every((c) => c === 0));
    if (off) {
      this.indicators[i] = null;
      return ack({ indicator: 'off' });
    }
    const color = parseColor(value.color);
    if (!color) return badBody('"color" must be [r,g,b] or "#RRGGBB"');
    // Blinking and fading are shown steady: the page answers reads of its
    // pixels, and those must not depend on when they are read.
    this.indicators[i] = { color, blink: value.blink ?? 0, fade: value.fade ?? 0 };
    return ack({ indicator: 'on' });
  }

  #moodlight(value, ack) {
    if (value === undefined) {
      this.mood = null;
      return ack({ moodlight: 'off' });
    }
    if (!isObject(value)) return badBody('body must be {"brightness","kelvin"} or {"brightness","color"}, or empty');
    let color = null;
    if (value.kelvin !== undefined) {
      if (!Number.isFinite(value.kelvin)) return badBody('"kelvin" must be a number');
      color = kelvinToRGB(value.kelvin);
    } else if (value.color !== undefined) {
      color = parseColor(value.color);
      if (!color) return badBody('"color" must be [r,g,b] or "#RRGGBB"');
    } else {
      return ack({ moodlight: 'unchanged' }); // as the firmware: nothing to show
    }
    const bri = Number.isInteger(value.brightness) ? Math.min(Math.max(value.brightness, 0), 255) : 255;
    this.mood = color.map((c) => Math.round((c * bri) / 255));
    return ack({ moodlight: 'on' });
  }

  #power(value, ack) {
    const on = isObject(value) ? value.power : value;
    if (typeof on !== 'boolean') return badBody('"power" must be true or false');
    this.power = on;
    return ack({ power: on });
  }

  #custom(name, value) {
    if (!name) return badBody('custom needs ?name= (the app\'s name)');
    if (value === undefined || (isObject(value) && Object.keys(value).length === 0)) {
      this.apps = this.apps.filter((a) => !a.startsWith(name));
      return { status: 200, body: { ok: true, mode: 'custom', deleted: name }, show: null };
    }
    const pages = Array.isArray(value) ? value : [value];
    if (pages.length === 0 || !pages.every(isObject)) return badBody('body must be an object or an array of objects');
    const names = pages.length > 1 ? pages.map((_, i) => name + i) : [name];
    for (const n of names) if (!this.apps.includes(n)) this.apps.push(n);
    // The first page is shown, as the clock's loop would come to it.
    const r = handleMessage('customapp', new TextEncoder().encode(JSON.stringify(pages[0])));
    if (r.status === 200) this.app = names[0];
    return r;
  }
}
