package loadtest

// This file holds the webhook bodies the attack sends: what callers really
// POST to an AWTRIX clock (shapes from the AWTRIX 2 and 3 APIs), each with
// the message's accounting key "lt" put first.

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/pixelrelay/relay/awtrix"
	"github.com/pixelrelay/relay/wire"
)

// body is one webhook body without its accounting key: the mode it goes to
// and the members after "{" (rest ends with "}").
type body struct {
	mode string
	rest string
}

// Body sizes the realistic sets stay within, counting the "lt" key.
const (
	smallMin, smallMax   = 50, 300
	bitmapMin, bitmapMax = 1600, 2400
)

// smallBodies are notifications, apps and settings, 50-300 bytes with the
// "lt" key: the bulk of real webhook traffic (IFTTT, Home Assistant).
var smallBodies = []body{
	{"notify", `"force":true,"text":"Awesome","icon":1,"color":[0,255,255],"count":2}`},
	{"notify", `"force":true,"icon":36,"text":"New mail from Alice Example","color":[255,255,255]}`},
	{"notify", `"text":"Hello, AWTRIX 3!","rainbow":true,"duration":10}`},
	{"notify", `"text":"Washing machine finished","icon":"washer","color":"#00FF00","duration":15,"hold":false,"sound":"chime","stack":true,"wakeup":true}`},
	{"notify", `"draw":[{"dc":[28,4,3,"#FF0000"]},{"dr":[20,4,4,4,"#0000FF"]},{"dt":[0,0,"Hello","#00FF00"]}]}`},
	{"app", `"name":"test","force":false,"icon":6,"text":"Awtrix","color":[255,0,0]}`},
	{"customapp", `"name":"weather","text":"21 C sunny","icon":2282,"color":"#FFD700","duration":8,"progress":42,"progressC":"#00FF00","progressBC":"#333333"}`},
	{"customapp", `"name":"stocks","text":[{"t":"AAPL ","c":"FFFFFF"},{"t":"+1.24%","c":"00FF00"},{"t":" MSFT ","c":"FFFFFF"},{"t":"-0.31%","c":"FF0000"}],"icon":"chart","repeat":2,"pushIcon":1,"lifetime":900}`},
	{"temporaryapp", `"name":"TestApp","lifetime":5,"icon":6,"text":"Totally Awesome","color":[60,255,0]}`},
	{"basics", `"timer":"00:00:10","color":[255,0,0],"count":10,"text":"AWTRIX"}`},
	{"settings", `"BRI":120,"ATIME":7,"TEFF":1,"TCOL":"#FFFFFF","ABRI":false,"ATRANS":true}`},
	{"draw", `"repeat":2,"draw":[{"type":"fill","color":[100,100,100]},{"type":"text","string":"Hello","position":[0,0],"color":[255,0,0]},{"type":"show"}]}`},
}

// bitmapBodies are full 32x8 frames, 1.6-2.4 KB: an AWTRIX 2 draw with an
// RGB565 bmp and AWTRIX 3 notifications drawing an RGB888 bitmap (db).
var bitmapBodies = makeBitmaps()

// makeBitmaps draws a few deterministic frames (gradients with noise, the
// texture of a weather icon or a photo) so that their sizes are stable.
func makeBitmaps() []body {
	r := rand.New(rand.NewPCG(1, 2))
	var out []body
	for f := range 4 {
		var b strings.Builder
		// AWTRIX 2: RGB565, five-digit values for bright frames.
		b.WriteString(`"repeat":1,"draw":[{"type":"bmp","position":[0,0],"size":[32,8],"data":[`)
		for p := range 256 {
			if p > 0 {
				b.WriteByte(',')
			}
			x, y := p%32, p/32
			r5 := 16 + (x/2+f*3)&15 // a warm, bright frame: five-digit values
			g6 := (y*63/8 + r.IntN(8)) & 63
			b5 := 16 + r.IntN(16)
			b.WriteString(strconv.Itoa(r5<<11 | g6<<5 | b5))
		}
		b.WriteString(`]},{"type":"show"}]}`)
		out = append(out, body{"draw", b.String()})

		// AWTRIX 3: RGB888 in a db command inside a notification.
		b.Reset()
		b.WriteString(`"draw":[{"db":[0,0,32,8,[`)
		for p := range 256 {
			if p > 0 {
				b.WriteByte(',')
			}
			x, y := p%32, p/32
			c := (x*8+f*16)&255<<16 | (y*32+r.IntN(32))&255<<8 | r.IntN(256)
			b.WriteString(strconv.Itoa(c))
		}
		fmt.Fprintf(&b, `]]}],"duration":%d,"hold":false}`, 5+f)
		out = append(out, body{"notify", b.String()})
	}
	return out
}

// mqttSmallBodies and mqttBitmapBodies are the bodies the relay can send
// an AWTRIX 3 clock over MQTT (awtrix.PlanMQTT plans them, "lt" key and
// all): the clock has no topic for AWTRIX 2's basics timer, and its
// settings refuse a key they do not know. The targeter sends MQTT clocks
// only these; the other devices get every body, as their agents do.
var mqttSmallBodies, mqttBitmapBodies = mqttPlannable(smallBodies), mqttPlannable(bitmapBodies)

func mqttPlannable(bodies []body) []body {
	var out []body
	for _, b := range bodies {
		m := wire.Message{Mode: b.mode, Body: appendBody(nil, b, 0, 0)}
		if _, err := awtrix.PlanMQTT(awtrix.Dialect3, "awtrix_000000", m, awtrix.MQTTOptions{}); err == nil {
			out = append(out, b)
		}
	}
	return out
}

// appendBody appends the JSON body for message id to device dev: the
// accounting key first, where the swarm finds it with one bytes.Index.
func appendBody(dst []byte, b body, id uint64, dev int) []byte {
	dst = append(dst, `{"lt":[`...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, ',')
	dst = strconv.AppendInt(dst, int64(dev), 10)
	dst = append(dst, "],"...)
	return append(dst, b.rest...)
}
