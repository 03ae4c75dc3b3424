package awtrix

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestTranslateDraw(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"line rect circle",
			`{"draw":[{"type":"line","start":[0,0],"end":[31,7],"color":[255,255,255]},` +
				`{"type":"rect","position":[19,2],"size":[3,5],"color":[255,0,0]},` +
				`{"type":"circle","radius":3,"position":[24,3],"color":[255,0,255]}]}`,
			`{"draw":[{"dl":[0,0,31,7,"#FFFFFF"]},{"dr":[19,2,3,5,"#FF0000"]},{"dc":[24,3,3,"#FF00FF"]}],"hold":true}`},
		{"bare array",
			`[{"type":"pixel","position":[1,2],"color":[1,2,3]}]`,
			`{"draw":[{"dp":[1,2,"#010203"]}],"hold":true}`},
		{"hex color accepted",
			`{"draw":[{"type":"text","string":"Hi","position":[0,0],"color":"#00ff00"}]}`,
			`{"draw":[{"dt":[1,0,"Hi","#00ff00"]}],"hold":true}`},
		{"AWTRIX 3 primitives pass through",
			`{"draw":[{"dc": [28, 4, 3, "#FF0000"]},{"type":"fill","color":[0,0,0]},{"dfc":[1,1,1,[1,2,3]]},{"db":[0,0,1,1,[255]]}]}`,
			`{"draw":[{"dc":[28,4,3,"#FF0000"]},{"df":[0,0,32,8,"#000000"]},{"dfc":[1,1,1,[1,2,3]]},{"db":[0,0,1,1,[255]]}],"hold":true}`},
		{"clear keeps the last frame",
			`{"repeat":2,"draw":[{"type":"fill","color":[100,100,100]},{"type":"show"},{"type":"wait","ms":3000},` +
				`{"type":"clear"},{"type":"line","start":[0,0],"end":[31,7],"color":[255,255,255]},{"type":"show"},{"type":"exit"}]}`,
			`{"draw":[{"dl":[0,0,31,7,"#FFFFFF"]}],"duration":6}`},
		{"only control commands",
			`{"draw":[{"type":"clear"},{"type":"show"},{"type":"exit"}]}`,
			`{"draw":[],"duration":1}`},
		{"negative coordinates and Java-short RGB565",
			`{"draw":[{"type":"bmp","position":[-1,-2],"size":[1,1],"data":[-2048]}]}`,
			`{"draw":[{"db":[-1,-2,1,1,[16711680]]}],"hold":true}`},
		{"unknown fields ignored",
			`{"draw":[{"type":"pixel","position":[0,0],"color":[0,0,0],"note":"x"}]}`,
			`{"draw":[{"dp":[0,0,"#000000"]}],"hold":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := translateDraw([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestTranslateDrawErrors(t *testing.T) {
	tests := []struct{ name, in, substr string }{
		{"no draw key", `{"repeat":1}`, "body must be"},
		{"draw not a list", `{"draw":{"type":"fill"}}`, "body must be"},
		{"empty list", `{"draw":[]}`, "no commands"},
		{"command not an object", `{"draw":[1]}`, "draw[0]: command must be a JSON object"},
		{"unknown type", `{"draw":[{"type":"triangle"}]}`, `unknown command type "triangle"`},
		{"type not a string", `{"draw":[{"type":7}]}`, `"type" must be a string`},
		{"neither kind", `{"draw":[{"color":[1,2,3]}]}`, "neither"},
		{"two primitives in one object", `{"draw":[{"dp":[0,0,"#FFFFFF"],"dl":[0,0,1,1,"#FFFFFF"]}]}`, "neither"},
		{"missing color", `{"draw":[{"type":"fill"}]}`, `fill: "color" must be`},
		{"color out of range", `{"draw":[{"type":"fill","color":[256,0,0]}]}`, `"color"`},
		{"color two parts", `{"draw":[{"type":"fill","color":[1,2]}]}`, `"color"`},
		{"bad hex color", `{"draw":[{"type":"fill","color":"red"}]}`, `"#RRGGBB"`},
		{"missing position", `{"draw":[{"type":"pixel","color":[1,2,3]}]}`, `pixel: "position"`},
		{"fractional position", `{"draw":[{"type":"pixel","position":[1.5,0],"color":[1,2,3]}]}`, `"position"`},
		{"huge position", `{"draw":[{"type":"pixel","position":[40000,0],"color":[1,2,3]}]}`, `"position"`},
		{"second of two errors not reported", `{"draw":[{"type":"line","end":[0,0]}]}`, `line: "start"`},
		{"missing end", `{"draw":[{"type":"line","start":[0,0],"color":[1,2,3]}]}`, `line: "end"`},
		{"negative size", `{"draw":[{"type":"rect","position":[0,0],"size":[-1,2],"color":[1,2,3]}]}`, `"size"`},
		{"negative radius", `{"draw":[{"type":"circle","position":[0,0],"radius":-1,"color":[1,2,3]}]}`, `"radius"`},
		{"null radius", `{"draw":[{"type":"circle","position":[0,0],"radius":null,"color":[1,2,3]}]}`, `"radius"`},
		{"text without string", `{"draw":[{"type":"text","position":[0,0],"color":[1,2,3]}]}`, `"string"`},
		{"bmp size zero", `{"draw":[{"type":"bmp","position":[0,0],"size":[0,0],"data":[]}]}`, `"size"`},
		{"bmp short data", `{"draw":[{"type":"bmp","position":[0,0],"size":[2,2],"data":[1,2,3]}]}`, "4 (width*height) pixels, not 3"},
		{"bmp pixel too big", `{"draw":[{"type":"bmp","position":[0,0],"size":[1,1],"data":[65536]}]}`, "0..65535"},
		{"bmp no data", `{"draw":[{"type":"bmp","position":[0,0],"size":[1,1]}]}`, `"data"`},
		{"index named", `{"draw":[{"type":"show"},{"type":"fill"}]}`, "draw[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := translateDraw([]byte(tt.in))
			if err == nil {
				t.Fatalf("no error, got %s", got)
			}
			if !errors.Is(err, errBadRequest) {
				t.Errorf("error %v is not a bad request", err)
			}
			if !strings.Contains(err.Error(), tt.substr) {
				t.Errorf("error %q does not contain %q", err, tt.substr)
			}
		})
	}
}

func TestRGB565to888(t *testing.T) {
	tests := []struct {
		in   uint16
		want uint32
	}{
		{0x0000, 0x000000},
		{0xFFFF, 0xFFFFFF},
		{0xF800, 0xFF0000},
		{0x07E0, 0x00FF00},
		{0x001F, 0x0000FF},
		{0x8410, 0x848284}, // mid grey: r5=16, g6=32, b5=16
		{0x0821, 0x080408}, // lowest step of each channel
	}
	for _, tt := range tests {
		if got := rgb565to888(tt.in); got != tt.want {
			t.Errorf("rgb565to888(%#04x) = %#06x, want %#06x", tt.in, got, tt.want)
		}
	}
}

// FuzzTranslateDraw feeds arbitrary bodies to the translator: it must not
// panic, every failure is a bad request, and every success is an AWTRIX 3
// draw body whose primitives are objects with one known key.
func FuzzTranslateDraw(f *testing.F) {
	f.Add([]byte(`{"repeat":2,"draw":[{"type":"fill","color":[100,100,100]},{"type":"text","string":"Hello","position":[0,0],"color":[255,0,0]},{"type":"show"},{"type":"wait","ms":3000},{"type":"exit"}]}`))
	f.Add([]byte(`{"duration":4,"text":"Hi","force":true,"draw":[{"dp":[0,0,"#FFFFFF"]}]}`))
	f.Add([]byte(`{"draw":[{"type":"bmp","position":[0,0],"size":[2,1],"data":[63488,-1]}]}`))
	f.Add([]byte(`[{"dp":[0,0,"#FFFFFF"]},{"type":"clear"}]`))
	f.Add([]byte(`{"draw":[{"type":"circle","position":[1,1],"radius":2,"color":"#ABCDEF"}]}`))
	f.Add([]byte(`{"draw":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := translateDraw(body)
		if err != nil {
			if !errors.Is(err, errBadRequest) && !errors.Is(err, errUnsupported) {
				t.Fatalf("error is not a bad request: %v", err)
			}
			return
		}
		checkOutput(t, "draw", out)
		var got struct {
			Draw []map[string]json.RawMessage `json:"draw"`
		}
		if err := json.Unmarshal(out, &got); err != nil || got.Draw == nil {
			t.Fatalf("output is not a draw body: %v: %s", err, out)
		}
		for i, p := range got.Draw {
			if !isPrimitive3(p) {
				t.Fatalf("draw[%d] is not one AWTRIX 3 primitive: %s", i, out)
			}
		}
	})
}

// BenchmarkTranslateDraw measures a full-frame AWTRIX 2 bitmap, the largest
// draw message clocks see (~1.6 KB of JSON).
func BenchmarkTranslateDraw(b *testing.B) {
	px := make([]string, matrixWidth*matrixHeight)
	for i := range px {
		px[i] = fmt.Sprint(i * 255)
	}
	body := []byte(`{"draw":[{"type":"bmp","position":[0,0],"size":[32,8],"data":[` + strings.Join(px, ",") + `]},{"type":"show"}]}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := translateDraw(body); err != nil {
			b.Fatal(err)
		}
	}
}
