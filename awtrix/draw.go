package awtrix

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Translating AWTRIX 2 drawing to AWTRIX 3.
//
// AWTRIX 2 draws with a list of commands that fill a frame buffer, show it,
// wait and go on (an animation). AWTRIX 3 draws one static frame: a "draw"
// list of primitives inside a notification or custom app. translateDraw maps
// what maps, following the AWTRIX 2.0 API documentation (en-en/api.md,
// "Drawing") and AWTRIX 3's docs/api.md ("Drawing Instructions"):
//
//	{"type":"fill","color":C}                            -> {"df":[0,0,32,8,C']}
//	{"type":"pixel","position":[x,y],"color":C}          -> {"dp":[x,y,C']}
//	{"type":"line","start":[x0,y0],"end":[x1,y1],"color":C} -> {"dl":[x0,y0,x1,y1,C']}
//	{"type":"rect","position":[x,y],"size":[w,h],"color":C} -> {"dr":[x,y,w,h,C']}
//	{"type":"circle","position":[x,y],"radius":r,"color":C} -> {"dc":[x,y,r,C']}
//	{"type":"text","position":[x,y],"string":s,"color":C}   -> {"dt":[x+1,y,s,C']}
//	{"type":"bmp","position":[x,y],"size":[w,h],"data":[RGB565...]} -> {"db":[x,y,w,h,[RGB888...]]}
//	{"type":"show"|"wait"|"exit"}                        -> nothing
//	{"type":"clear"}                                     -> nothing, and drops what came before it
//	{"dp"|"dl"|"dr"|"df"|"dc"|"dfc"|"dt"|"db": ...}      -> passed through unchanged (already AWTRIX 3)
//
// Timing: AWTRIX 2 stays in drawing mode until "exit", or, with "repeat"
// (or "loop") at the top, until every repetition has run; the waits are
// the time that takes. AWTRIX 3 shows a notification for "duration"
// seconds. So the translation gives the notification the drawing's time:
// the waits (before exit, or all of them times repeat), rounded up to a
// second, at least one; and "hold": true when AWTRIX 2 would have stayed
// until told otherwise (no exit, no repeat), which keeps it until mode
// dismiss. A "duration" or "hold" the caller gave wins. Other top-level
// keys are a notification's (text, icon, ...), translated as for notify.
//
// Text: AWTRIX 2's controller draws text one pixel right of its position
// (AWTRIX2.0-Controller, DrawText: setCursor(x + 1, y + 5)); AWTRIX 3's dt
// draws at it (setCursor(x, y + 5)), so x moves one right.
//
// Assumptions, where the references are silent:
//   - The body is {"draw":[...], ...} as AWTRIX 2 takes it, or a bare array
//     of commands.
//   - Since AWTRIX 3 shows a single frame, the translation keeps what the
//     AWTRIX 2 clock would have in its frame buffer at the end: a "clear"
//     discards the primitives before it, so an animation collapses to its
//     last frame instead of a pile-up of all frames that never was on screen.
//   - Every parameter AWTRIX 2 documents for a command is required; a missing
//     or malformed one is a 400 naming the command, rather than a guess.
//   - C is [r,g,b] with 0..255 components; C' is "#RRGGBB". A color that is
//     already a "#RRGGBB" string is accepted as is.
//   - Coordinates, sizes and radii are integers in int16 range (what
//     Adafruit GFX on both firmwares takes); sizes and radii are >= 0 and a
//     bitmap's size is at least 1x1 with exactly w*h pixels.
//   - RGB565 pixels are 0..65535; negative values down to -32768 are taken as
//     the int16 form of the same 16 bits (a Java short). Each channel widens
//     by bit replication (r5<<3|r5>>2, g6<<2|g6>>4, b5<<3|b5>>2), so 0xFFFF is
//     white 0xFFFFFF and 0xF800 pure red 0xFF0000.
//   - The matrix is 32 x 8: fill is a filled rectangle of that size.
//   - An AWTRIX 3 primitive is an object with exactly one of the eight keys;
//     its arguments are the clock's to check.

// Matrix size of AWTRIX clocks.
const (
	matrixWidth  = 32
	matrixHeight = 8
)

// primitives3 are AWTRIX 3's drawing instructions.
var primitives3 = map[string]bool{
	"dp": true, "dl": true, "dr": true, "df": true,
	"dc": true, "dfc": true, "dt": true, "db": true,
}

// translateDraw turns a draw message into an AWTRIX 3 notify body.
func translateDraw(body []byte) ([]byte, error) {
	const shape = "draw: body must be {\"draw\":[...]} or an array of commands"
	var list []json.RawMessage
	top := map[string]json.RawMessage{}
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '[' {
		if err := json.Unmarshal(t, &list); err != nil {
			return nil, badRequest(shape)
		}
	} else {
		if err := json.Unmarshal(body, &top); err != nil || top == nil || top["draw"] == nil || json.Unmarshal(top["draw"], &list) != nil || list == nil {
			return nil, badRequest(shape)
		}
		delete(top, "draw")
	}
	if len(list) == 0 {
		return nil, badRequest("draw: no commands")
	}
	repeat := int64(0) // AWTRIX 2's repetitions; 0: none given
	for _, k := range []string{"repeat", "loop"} {
		if raw, ok := top[k]; ok {
			n, ok := wholeNumber(raw)
			if !ok || n < 1 || n > 1000 {
				return nil, badRequest("draw: %q must be a number of repetitions, 1 to 1000", k)
			}
			repeat = max(repeat, n)
			delete(top, k)
		}
	}
	out := make([]any, 0, len(list))
	var waited, beforeExit int64 // milliseconds
	exited := false
	for i, raw := range list {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			return nil, badRequest("draw[%d]: command must be a JSON object", i)
		}
		if _, ok := m["type"]; !ok {
			if !isPrimitive3(m) {
				return nil, badRequest("draw[%d]: neither an AWTRIX 2 command (\"type\") nor one AWTRIX 3 primitive (dp, dl, dr, df, dc, dfc, dt, db)", i)
			}
			out = append(out, raw)
			continue
		}
		p, t, err := command2(m)
		switch {
		case err != nil:
			return nil, badRequest("draw[%d]: %s", i, err.Error())
		case t.clear:
			out = out[:0]
		case t.exit:
			if !exited {
				exited, beforeExit = true, waited
			}
		case p != nil:
			out = append(out, p)
		}
		waited += t.wait
	}
	notify, err := translate("draw", top, toNotify)
	if err != nil {
		return nil, err
	}
	_, hasDuration := notify["duration"]
	_, hasHold := notify["hold"]
	if !hasDuration && !hasHold {
		switch {
		case repeat > 0:
			notify["duration"] = seconds(waited * repeat)
		case exited:
			notify["duration"] = seconds(beforeExit)
		default:
			notify["hold"] = json.RawMessage("true")
		}
	}
	d, err := json.Marshal(out)
	if err != nil { // only from a pass-through primitive json.Valid already accepted
		return nil, badRequest("draw: %s", err.Error())
	}
	notify["draw"] = d
	return marshal(notify), nil
}

// seconds is a duration in whole seconds, rounded up, at least one.
func seconds(ms int64) json.RawMessage {
	return json.RawMessage(strconv.FormatInt(max(1, (ms+999)/1000), 10))
}

// isPrimitive3 reports whether m is one AWTRIX 3 drawing instruction.
func isPrimitive3(m map[string]json.RawMessage) bool {
	if len(m) != 1 {
		return false
	}
	for k := range m {
		return primitives3[k]
	}
	return false
}

// timing is what a command does besides drawing.
type timing struct {
	clear bool  // "clear": drops what came before
	exit  bool  // "exit": leaves drawing mode
	wait  int64 // "wait": milliseconds
}

// command2 translates one AWTRIX 2 command. p is nil for commands that draw
// nothing. The error's text goes to the caller.
func command2(m map[string]json.RawMessage) (p map[string]any, t timing, err error) {
	var typ string
	if err := json.Unmarshal(m["type"], &typ); err != nil {
		return nil, t, fmt.Errorf("\"type\" must be a string")
	}
	f := fields{m: m, typ: typ}
	switch typ {
	case "fill":
		c := f.color("color")
		p = map[string]any{"df": []any{0, 0, matrixWidth, matrixHeight, c}}
	case "pixel":
		x, y := f.point("position")
		c := f.color("color")
		p = map[string]any{"dp": []any{x, y, c}}
	case "line":
		x0, y0 := f.point("start")
		x1, y1 := f.point("end")
		c := f.color("color")
		p = map[string]any{"dl": []any{x0, y0, x1, y1, c}}
	case "rect":
		x, y := f.point("position")
		w, h := f.size("size", 0)
		c := f.color("color")
		p = map[string]any{"dr": []any{x, y, w, h, c}}
	case "circle":
		x, y := f.point("position")
		r := f.radius("radius")
		c := f.color("color")
		p = map[string]any{"dc": []any{x, y, r, c}}
	case "text":
		x, y := f.point("position")
		s := f.str("string")
		c := f.color("color")
		p = map[string]any{"dt": []any{x + 1, y, s, c}}
	case "bmp":
		x, y := f.point("position")
		w, h := f.size("size", 1)
		px := f.bitmap("data", w, h)
		p = map[string]any{"db": []any{x, y, w, h, px}}
	case "show":
		return nil, t, nil
	case "wait":
		ms, ok := wholeNumber(m["ms"])
		if !ok || ms < 0 || ms > 3600_000 {
			return nil, t, fmt.Errorf("wait: \"ms\" must be milliseconds, 0 to 3600000")
		}
		t.wait = ms
		return nil, t, nil
	case "exit":
		t.exit = true
		return nil, t, nil
	case "clear":
		t.clear = true
		return nil, t, nil
	default:
		return nil, t, fmt.Errorf("unknown command type %q", truncate(typ, 32))
	}
	if f.err != nil {
		return nil, t, f.err
	}
	return p, t, nil
}

// fields reads a command's parameters and keeps the first error, so that
// command2 reads as the mapping table.
type fields struct {
	m   map[string]json.RawMessage
	typ string
	err error
}

func (f *fields) fail(key, want string) {
	if f.err == nil {
		f.err = fmt.Errorf("%s: %q must be %s", f.typ, key, want)
	}
}

// ints decodes key as an array of exactly n integers in [lo, hi].
func (f *fields) ints(key string, n int, lo, hi int, want string) []int {
	raw, ok := f.m[key]
	var v []int
	if !ok || json.Unmarshal(raw, &v) != nil || len(v) != n {
		f.fail(key, want)
		return make([]int, n)
	}
	for _, x := range v {
		if x < lo || x > hi {
			f.fail(key, want)
			return make([]int, n)
		}
	}
	return v
}

func (f *fields) point(key string) (x, y int) {
	v := f.ints(key, 2, math.MinInt16, math.MaxInt16, "[x,y] with integer coordinates")
	return v[0], v[1]
}

func (f *fields) size(key string, min int) (w, h int) {
	v := f.ints(key, 2, min, math.MaxInt16, fmt.Sprintf("[width,height] with integers >= %d", min))
	return v[0], v[1]
}

func (f *fields) radius(key string) int {
	raw, ok := f.m[key]
	var r int
	if !ok || json.Unmarshal(raw, &r) != nil || isNull(raw) || r < 0 || r > math.MaxInt16 {
		f.fail(key, "an integer >= 0")
		return 0
	}
	return r
}

func (f *fields) str(key string) string {
	raw, ok := f.m[key]
	var s string
	if !ok || json.Unmarshal(raw, &s) != nil || isNull(raw) {
		f.fail(key, "a string")
	}
	return s
}

// color returns key as AWTRIX 3's "#RRGGBB".
func (f *fields) color(key string) string {
	const want = "[r,g,b] with components 0..255"
	raw, ok := f.m[key]
	if !ok {
		f.fail(key, want)
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil && !isNull(raw) {
		if !isHexColor(s) {
			f.fail(key, want+" or \"#RRGGBB\"")
		}
		return s
	}
	v := f.ints(key, 3, 0, 255, want)
	return fmt.Sprintf("#%02X%02X%02X", v[0], v[1], v[2])
}

func isHexColor(s string) bool {
	if len(s) != 7 || s[0] != '#' {
		return false
	}
	for _, c := range []byte(s[1:]) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// bitmap decodes key as w*h RGB565 pixels and returns them as RGB888.
func (f *fields) bitmap(key string, w, h int) []uint32 {
	if f.err != nil {
		return nil
	}
	raw, ok := f.m[key]
	var v []int
	if !ok || json.Unmarshal(raw, &v) != nil || v == nil {
		f.fail(key, "an array of RGB565 integers")
		return nil
	}
	if len(v) != w*h {
		f.fail(key, fmt.Sprintf("%d (width*height) pixels, not %d", w*h, len(v)))
		return nil
	}
	px := make([]uint32, len(v))
	for i, c := range v {
		if c < math.MinInt16 || c > math.MaxUint16 {
			f.fail(key, "an array of RGB565 integers (0..65535)")
			return nil
		}
		px[i] = rgb565to888(uint16(c))
	}
	return px
}

// rgb565to888 widens a 5-6-5 pixel to 8 bits a channel by bit replication,
// which maps full scale to full scale (31 -> 255, 63 -> 255).
func rgb565to888(c uint16) uint32 {
	r := uint32(c>>11) & 0x1f
	g := uint32(c>>5) & 0x3f
	b := uint32(c) & 0x1f
	r = r<<3 | r>>2
	g = g<<2 | g>>4
	b = b<<3 | b>>2
	return r<<16 | g<<8 | b
}
