// The canvas that shows the matrix: 32x8 LEDs, each a 20x20 CSS px square.
//
// The model is leds[y][x] = [r,g,b], what was drawn; the canvas shows
// overlay(leds) (the clock's indicators, mood light, sleep), always painted
// synchronously, so that a reply leaves the relay only after its pixels
// are on the canvas. Squares have no gaps and no rounding, so the centre of cell
// (x, y), at canvas point (x*20+10, y*20+10), has exactly the LED's color.

import { GLYPH_HEIGHT, textColumns } from './font.js';
import { HEIGHT, WIDTH, copyFrame, newFrame } from './matrix.js';

export const CELL = 20; // CSS px per LED; the canvas is 640x160 and never scaled
const TEXT_TOP = 1; // text sits in rows 1..5, as on the clock
const SCROLL_PX_PER_S = 30;
const TICK_MS = 1000 / SCROLL_PX_PER_S;

export class Display {
  #ctx;
  #timer = 0; // setInterval id of the scrolling text, 0 when static

  /** leds is the model, leds[y][x] = [r,g,b]; treat it as read-only. */
  leds = newFrame();
  /** shown is what the canvas shows: overlay(leds); read-only. */
  shown = newFrame();
  #overlay;

  /** overlay maps a drawn frame to the one shown; the identity by default. */
  constructor(canvas, overlay = (f) => f) {
    this.#overlay = overlay;
    canvas.width = WIDTH * CELL;
    canvas.height = HEIGHT * CELL;
    // willReadFrequently keeps the canvas in CPU memory: pixel() reads it.
    this.#ctx = canvas.getContext('2d', { alpha: false, willReadFrequently: true });
    this.#paint();
  }

  /** showFrame replaces the screen with a drawn frame and stops any scrolling. */
  showFrame(frame) {
    this.#stopScroll();
    this.leds = copyFrame(frame);
    this.#paint();
  }

  /**
   * showText shows text in color: centred when it fits, else scrolling right
   * to left at 30 px/s, starting at the left edge so that it reads at once,
   * then coming back in from the right.
   */
  showText(text, color) {
    this.#stopScroll();
    const cols = textColumns(text);
    if (cols.length <= WIDTH) {
      this.#renderText(cols, Math.floor((WIDTH - cols.length) / 2), color);
      return;
    }
    // x goes 0, -1, ... -(width-1), then WIDTH, WIDTH-1, ... again.
    const period = cols.length + WIDTH;
    const start = performance.now();
    let shown = 0;
    this.#renderText(cols, 0, color);
    this.#timer = setInterval(() => {
      // From the clock, not the tick count: timers are late under load and
      // throttled in background tabs.
      const step = Math.floor(((performance.now() - start) * SCROLL_PX_PER_S) / 1000);
      const x = WIDTH - ((step + WIDTH) % period);
      if (x !== shown) {
        shown = x;
        this.#renderText(cols, x, color);
      }
    }, TICK_MS);
  }

  /** repaint shows the model again, after the overlay's state changed. */
  repaint() {
    this.#paint();
  }

  /** clear blanks what was drawn, as a dismissed notification leaves. */
  clear() {
    this.showFrame(newFrame());
  }

  /** pixel reads back the canvas at the centre of LED (x, y): [r,g,b]. */
  pixel(x, y) {
    const d = this.#ctx.getImageData(x * CELL + CELL / 2, y * CELL + CELL / 2, 1, 1).data;
    return [d[0], d[1], d[2]];
  }

  /** #renderText draws text columns with the first at x onto a black frame. */
  #renderText(cols, x, color) {
    const f = newFrame();
    for (let dx = Math.max(0, -x); dx < cols.length && x + dx < WIDTH; dx++) {
      for (let dy = 0; dy < GLYPH_HEIGHT; dy++) {
        if (cols[dx] & (1 << dy)) f[TEXT_TOP + dy][x + dx] = [...color];
      }
    }
    this.leds = f;
    this.#paint();
  }

  #stopScroll() {
    clearInterval(this.#timer);
    this.#timer = 0;
  }

  #paint() {
    const ctx = this.#ctx;
    this.shown = this.#overlay(this.leds);
    this.shown.forEach((row, y) =>
      row.forEach(([r, g, b], x) => {
        ctx.fillStyle = `rgb(${r}, ${g}, ${b})`;
        ctx.fillRect(x * CELL, y * CELL, CELL, CELL);
      }),
    );
  }
}
