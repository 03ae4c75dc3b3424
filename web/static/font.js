// A 3x5 pixel font for the 32x8 matrix, ASCII 32..126.
//
// Each glyph is five rows, top to bottom, separated by spaces; '#' is a lit
// pixel. Most glyphs are 3 pixels wide. M, W, m, w are 5 and N, ~ are 4 wide
// because they are unreadable in 3; narrow punctuation (! . : ' | i l and
// friends) is 1 or 2 wide so that text stays short. Glyphs are drawn with 1
// pixel between them. Lowercase has no descenders: 5 rows leave no room.

export const GLYPH_HEIGHT = 5;
export const SPACING = 1;

const GLYPHS = {
  ' ': '.. .. .. .. ..',
  '!': '# # # . #',
  '"': '#.# #.# ... ... ...',
  '#': '#.# ### #.# ### #.#',
  '$': '.## #.. ### ..# ##.',
  '%': '#.# ..# .#. #.. #.#',
  '&': '.#. #.# .#. #.# .##',
  "'": '# # . . .',
  '(': '.# #. #. #. .#',
  ')': '#. .# .# .# #.',
  '*': '... #.# .#. #.# ...',
  '+': '... .#. ### .#. ...',
  ',': '.. .. .. .# #.',
  '-': '... ... ### ... ...',
  '.': '. . . . #',
  '/': '..# ..# .#. #.. #..',
  '0': '### #.# #.# #.# ###',
  '1': '.#. ##. .#. .#. ###',
  '2': '### ..# ### #.. ###',
  '3': '### ..# .## ..# ###',
  '4': '#.# #.# ### ..# ..#',
  '5': '### #.. ### ..# ###',
  '6': '### #.. ### #.# ###',
  '7': '### ..# ..# .#. .#.',
  '8': '### #.# ### #.# ###',
  '9': '### #.# ### ..# ###',
  ':': '. # . # .',
  ';': '.. .# .. .# #.',
  '<': '..# .#. #.. .#. ..#',
  '=': '... ### ... ### ...',
  '>': '#.. .#. ..# .#. #..',
  '?': '### ..# .## ... .#.',
  '@': '.#. #.# ### #.. .##',
  'A': '.#. #.# ### #.# #.#',
  'B': '##. #.# ##. #.# ##.',
  'C': '.## #.. #.. #.. .##',
  'D': '##. #.# #.# #.# ##.',
  'E': '### #.. ##. #.. ###',
  'F': '### #.. ##. #.. #..',
  'G': '.## #.. #.# #.# .##',
  'H': '#.# #.# ### #.# #.#',
  'I': '### .#. .#. .#. ###',
  'J': '..# ..# ..# #.# .#.',
  'K': '#.# #.# ##. #.# #.#',
  'L': '#.. #.. #.. #.. ###',
  'M': '#...# ##.## #.#.# #...# #...#',
  'N': '#..# ##.# #.## #..# #..#',
  'O': '.#. #.# #.# #.# .#.',
  'P': '##. #.# ##. #.. #..',
  'Q': '.#. #.# #.# ##. .##',
  'R': '##. #.# ##. #.# #.#',
  'S': '.## #.. .#. ..# ##.',
  'T': '### .#. .#. .#. .#.',
  'U': '#.# #.# #.# #.# ###',
  'V': '#.# #.# #.# #.# .#.',
  'W': '#...# #...# #.#.# ##.## #...#',
  'X': '#.# #.# .#. #.# #.#',
  'Y': '#.# #.# .#. .#. .#.',
  'Z': '### ..# .#. #.. ###',
  '[': '## #. #. #. ##',
  '\\': '#.. #.. .#. ..# ..#',
  ']': '## .# .# .# ##',
  '^': '.#. #.# ... ... ...',
  '_': '... ... ... ... ###',
  '`': '#. .# .. .. ..',
  'a': '... .## #.# #.# .##',
  'b': '#.. ##. #.# #.# ##.',
  'c': '... .## #.. #.. .##',
  'd': '..# .## #.# #.# .##',
  'e': '... .#. #.# ##. .##',
  'f': '.## #.. ##. #.. #..',
  'g': '... .## #.# .## ##.',
  'h': '#.. ##. #.# #.# #.#',
  'i': '# . # # #',
  'j': '.# .. .# .# #.',
  'k': '#.. #.# ##. #.# #.#',
  'l': '#. #. #. #. .#',
  'm': '..... ##.#. #.#.# #.#.# #.#.#',
  'n': '... ##. #.# #.# #.#',
  'o': '... .#. #.# #.# .#.',
  'p': '... ##. #.# ##. #..',
  'q': '... .## #.# .## ..#',
  'r': '... .## #.. #.. #..',
  's': '... .## #.. ..# ##.',
  't': '.#. ### .#. .#. .##',
  'u': '... #.# #.# #.# .##',
  'v': '... #.# #.# #.# .#.',
  'w': '..... #...# #.#.# #.#.# .#.#.',
  'x': '... #.# .#. .#. #.#',
  'y': '... #.# #.# .## ##.',
  'z': '... ### .## ##. ###',
  '{': '.## .#. ##. .#. .##',
  '|': '# # # # #',
  '}': '##. .#. .## .#. ##.',
  '~': '.... .#.# #.#. .... ....',
};

/** parse turns the table's rows into {width, rows: boolean[][]}. */
function parse(spec) {
  const rows = spec.split(' ').map((r) => [...r].map((c) => c === '#'));
  return { width: rows[0].length, rows };
}

const glyphs = new Map(Object.entries(GLYPHS).map(([ch, spec]) => [ch, parse(spec)]));
const fallback = glyphs.get('?');

/** glyph returns the glyph of one character; characters the font lacks draw as '?'. */
export function glyph(ch) {
  return glyphs.get(ch) ?? fallback;
}

/** chars lists the characters the font has, for tests. */
export function chars() {
  return [...glyphs.keys()];
}

/** textWidth is the width of s in pixels: glyphs plus 1 pixel between each two. */
export function textWidth(s) {
  let w = 0;
  let n = 0;
  for (const ch of s) {
    w += glyph(ch).width;
    n++;
  }
  return n === 0 ? 0 : w + (n - 1) * SPACING;
}

/**
 * drawText calls plot(x, y) for every lit pixel of s with its top-left
 * corner at (x, y). Clipping is the caller's: plot gets every pixel.
 */
export function drawText(s, x, y, plot) {
  for (const ch of s) {
    const g = glyph(ch);
    g.rows.forEach((row, dy) => row.forEach((lit, dx) => lit && plot(x + dx, y + dy)));
    x += g.width + SPACING;
  }
}

/**
 * textColumns renders s once into one bit mask per pixel column (bit dy set
 * when row dy is lit), so that scrolling long text only copies 32 columns a
 * frame instead of redrawing every glyph.
 */
export function textColumns(s) {
  const cols = new Uint8Array(textWidth(s));
  drawText(s, 0, 0, (x, y) => {
    cols[x] |= 1 << y;
  });
  return cols;
}
