package mqttclock

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// What the firmwares do on the wire: their subscriptions, their publishes
// on connecting, their answers to commands, and their payloads.

// AWTRIX3Topics is AWTRIX 3's subscription list, in its order, each to go
// under the prefix P (MQTTManager.cpp's onMqttConnected; /nextapp is there
// twice).
func AWTRIX3Topics() []string { return append([]string(nil), awtrix3Topics...) }

var awtrix3Topics = []string{
	"/brightness", "/notify/dismiss", "/notify", "/custom/#", "/switch", "/settings",
	"/previousapp", "/nextapp", "/doupdate", "/nextapp", "/apps", "/power", "/sleep",
	"/indicator1", "/indicator2", "/indicator3", "/timeformat", "/dateformat", "/reboot",
	"/moodlight", "/sound", "/rtttl", "/sendscreen", "/r2d2",
}

// screenWidth is the matrix's width; Screen holds whole rows of it.
const screenWidth = 32

// DefaultScreen is the screen a clock shows unless Config.Screen says
// otherwise: 32x8, red rising left to right, green top to bottom, so that
// a pixel out of place shows.
func DefaultScreen() []uint32 {
	s := make([]uint32, screenWidth*8)
	for i := range s {
		x, y := uint32(i%screenWidth), uint32(i/screenWidth)
		s[i] = x*8<<16 | y*32<<8 | (x+y)&0xFF
	}
	return s
}

// PacketSize is the size of the PUBLISH packet, fixed header included,
// that carries payloadLen bytes on topic at QoS 0: what PubSubClient
// compares with its buffer (MaxPacket).
func PacketSize(topic string, payloadLen int) int {
	rest := 2 + len(topic) + payloadLen
	n := 1
	for v := rest; v >= 128; v >>= 7 {
		n++
	}
	return 1 + n + rest
}

// will is the last will: AWTRIX 3 P/stats/device "offline" not retained,
// NG P/availability "offline" retained.
func (cfg *Config) will() (topic string, payload []byte, retained bool) {
	if cfg.Dialect == NG {
		return cfg.Prefix + "/availability", []byte("offline"), true
	}
	return cfg.Prefix + "/stats/device", []byte("offline"), false
}

// onConnect is the firmware's on-connect sequence.
func (cn *conn) onConnect(ctx context.Context) error {
	c := cn.clock
	p := c.cfg.Prefix
	if c.cfg.Dialect == NG {
		// MqttService::onOnline, then the first tick's state topics.
		if err := cn.subscribe(ctx, []string{p + "/cmd/#"}, 0); err != nil {
			return err
		}
		c.mu.Lock()
		app := c.app
		c.mu.Unlock()
		pubs := []struct {
			topic   string
			payload []byte
		}{
			{"/availability", []byte("online")},
			{"/state/capabilities", []byte(ngCapabilities)},
			{"/state/prefix", []byte(p)},
			{"/state/apps/active", []byte(app)},
			{"/state/buttons/left", []byte("0")},
			{"/state/buttons/select", []byte("0")},
			{"/state/buttons/right", []byte("0")},
			{"/state/settings", []byte(ngSettings)},
			{"/state/audio", []byte(ngAudio)},
			{"/state/device", c.stats()},
		}
		for _, m := range pubs {
			if err := cn.wait(ctx, cn.client.Publish(p+m.topic, 0, true, m.payload)); err != nil {
				return fmt.Errorf("mqttclock: publish %s: %w", m.topic, err)
			}
		}
		return nil
	}
	topics := make([]string, len(awtrix3Topics))
	for i, t := range awtrix3Topics {
		topics[i] = p + t
	}
	if err := cn.subscribe(ctx, topics, c.cfg.SubscribeGap); err != nil {
		return err
	}
	// Without Home Assistant discovery, which the simulator does not do.
	for _, m := range []struct{ topic, payload string }{
		{"/stats/effects", awtrix3Effects},
		{"/stats/transitions", awtrix3Transitions},
		{"/stats/device", "online"},
	} {
		if err := cn.wait(ctx, cn.client.Publish(p+m.topic, 0, false, m.payload)); err != nil {
			return fmt.Errorf("mqttclock: publish %s: %w", m.topic, err)
		}
	}
	return nil
}

// subscribe sends one SUBSCRIBE per filter at QoS 0, gap apart, as
// PubSubClient does (it never waits for SUBACK), then waits for every
// SUBACK.
func (cn *conn) subscribe(ctx context.Context, filters []string, gap time.Duration) error {
	toks := make([]mqtt.Token, len(filters))
	for i, f := range filters {
		if i > 0 && gap > 0 {
			t := time.NewTimer(gap)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		toks[i] = cn.client.Subscribe(f, 0, nil) // nil: cn.handle, the default handler
	}
	for i, t := range toks {
		if err := cn.wait(ctx, t); err != nil {
			return fmt.Errorf("mqttclock: subscribe %s: %w", filters[i], err)
		}
		if rc, ok := t.(*mqtt.SubscribeToken).Result()[filters[i]]; ok && rc == 0x80 {
			return fmt.Errorf("%w: %s", ErrSubscribe, filters[i])
		}
	}
	return nil
}

// handle is the firmware's message callback. It runs on paho's router
// goroutine, one message at a time in order (SetOrderMatters), and must
// not block: its answers are handed to paho without waiting.
func (cn *conn) handle(_ mqtt.Client, m mqtt.Message) {
	c := cn.clock
	topic, payload := m.Topic(), m.Payload()
	if PacketSize(topic, len(payload)) > MaxPacket {
		c.mu.Lock()
		c.dropped++
		c.mu.Unlock()
		return
	}
	p := c.cfg.Prefix
	if c.cfg.Dialect == AWTRIX3 {
		c.record(topic, payload, m.Retained())
		if topic == p+"/sendscreen" {
			cn.client.Publish(p+"/screen", 0, false, awtrix3Screen(c.cfg.Screen))
		}
		return
	}
	// NG: MqttService::handleMessage.
	suffix, ok := strings.CutPrefix(topic, p+"/")
	if !ok {
		return
	}
	// Its own answers come back on its subscription; a /result topic is
	// never a command. (NG skips one only if the topic without /result is
	// a route; the simulator knows no routes.)
	if strings.HasSuffix(suffix, "/result") {
		return
	}
	msg := c.record(topic, payload, m.Retained())
	op, ok := strings.CutPrefix(suffix, "cmd/")
	if !ok || op == "" { // P/cmd and P/cmd/ match no route
		return
	}
	result := []byte(`{"ok":true}`)
	if op == "screen/get" {
		cn.client.Publish(p+"/state/screen", 0, false, ngScreen(c.cfg.Screen))
	} else if c.cfg.Result != nil {
		if r := c.cfg.Result(topic, msg.Payload); r != nil {
			result = r
		}
	}
	if len(result) > 0 {
		cn.client.Publish(topic+"/result", 0, false, result)
	}
}

// record keeps a received command for Commands and Next.
func (c *Clock) record(topic string, payload []byte, retained bool) Message {
	m := Message{Topic: topic, Payload: append([]byte{}, payload...), Retained: retained}
	c.mu.Lock()
	c.commands = append(c.commands, m)
	close(c.arrived)
	c.arrived = make(chan struct{})
	c.mu.Unlock()
	return m
}

func (cn *conn) publishStats() error {
	c := cn.clock
	if c.cfg.Dialect == NG {
		return cn.send(c.cfg.Prefix+"/state/device", c.stats(), true)
	}
	return cn.send(c.cfg.Prefix+"/stats", c.stats(), false)
}

// stats is Config.Stats, or the firmware's stats document with live
// uptime, message count and app (AWTRIX 3 DisplayManager::getStats, NG
// GET /api/v1/device's shape), on a plausible board.
func (c *Clock) stats() []byte {
	if c.cfg.Stats != nil {
		return c.cfg.Stats
	}
	c.mu.Lock()
	messages, app := len(c.commands), c.app
	c.mu.Unlock()
	uptime := int(time.Since(c.started) / time.Second)
	var doc any
	if c.cfg.Dialect == NG {
		doc = ngDevice{
			Version: "1.0.12", UID: c.cfg.ClientID, BoardType: "awtrixng", SoC: "esp32",
			IPAddress: "192.0.2.42", Hostname: "awtrixng-" + tail6(c.cfg.ClientID), WifiRssi: -58,
			UptimeSeconds: uptime, FreeHeapBytes: 118234, MinFreeHeapBytes: 91560,
			LargestFreeBlockBytes: 63488, ScriptingRunning: true, ScriptHeapPool: "internal",
			ScriptHeapBudgetBytes: 98304, ResetReason: "poweron", FPS: 41, Brightness: 120,
			MatrixPower: true, CurrentApp: app,
			Indicators: []ngIndicator{
				{Color: "#000000"}, {Color: "#000000"}, {Color: "#000000"},
			},
			MessageCount: messages,
			Wifi:         ngLink{Enabled: true, State: "connected", Host: "MyNetwork", Endpoint: "192.0.2.1", Connects: 1},
			MQTT:         ngLink{Enabled: true, State: "connected", Host: "relay", Endpoint: "192.0.2.10:1883", Connects: 1},
		}
	} else {
		doc = awtrix3Stats{
			Bat: 100, BatRaw: 670, Type: 0, Lux: 18, LDRRaw: 223, RAM: 154988, Bri: 120,
			Temp: 23.4, Hum: 40, Uptime: uptime, WifiSignal: -58, Messages: messages,
			Version: "0.98", App: app, UID: c.cfg.ClientID, Matrix: true, IPAddress: "192.0.2.42",
		}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err) // fixed types: cannot happen
	}
	return b
}

func tail6(s string) string {
	if len(s) < 6 {
		return s
	}
	return s[len(s)-6:]
}

// awtrix3Stats is DisplayManager::getStats's document, in its order.
type awtrix3Stats struct {
	Bat        int     `json:"bat"`
	BatRaw     int     `json:"bat_raw"`
	Type       int     `json:"type"`
	Lux        int     `json:"lux"`
	LDRRaw     int     `json:"ldr_raw"`
	RAM        int     `json:"ram"`
	Bri        int     `json:"bri"`
	Temp       float64 `json:"temp"`
	Hum        int     `json:"hum"`
	Uptime     int     `json:"uptime"`
	WifiSignal int     `json:"wifi_signal"`
	Messages   int     `json:"messages"`
	Version    string  `json:"version"`
	Indicator1 bool    `json:"indicator1"`
	Indicator2 bool    `json:"indicator2"`
	Indicator3 bool    `json:"indicator3"`
	App        string  `json:"app"`
	UID        string  `json:"uid"`
	Matrix     bool    `json:"matrix"`
	IPAddress  string  `json:"ip_address"`
}

// ngDevice is NG's device state (docs/reference/device.md), the fields a
// board without battery or sensors has.
type ngDevice struct {
	Version               string        `json:"version"`
	UID                   string        `json:"uid"`
	BoardType             string        `json:"boardType"`
	SoC                   string        `json:"soc"`
	IPAddress             string        `json:"ipAddress"`
	Hostname              string        `json:"hostname"`
	WifiRssi              int           `json:"wifiRssi"`
	UptimeSeconds         int           `json:"uptimeSeconds"`
	FreeHeapBytes         int           `json:"freeHeapBytes"`
	MinFreeHeapBytes      int           `json:"minFreeHeapBytes"`
	LargestFreeBlockBytes int           `json:"largestFreeBlockBytes"`
	ScriptingRunning      bool          `json:"scriptingRunning"`
	ScriptHeapPool        string        `json:"scriptHeapPool"`
	ScriptHeapBudgetBytes int           `json:"scriptHeapBudgetBytes"`
	ResetReason           string        `json:"resetReason"`
	FPS                   int           `json:"fps"`
	Brightness            int           `json:"brightness"`
	MatrixPower           bool          `json:"matrixPower"`
	CurrentApp            string        `json:"currentApp"`
	Indicators            []ngIndicator `json:"indicators"`
	MessageCount          int           `json:"messageCount"`
	Wifi                  ngLink        `json:"wifi"`
	MQTT                  ngLink        `json:"mqtt"`
}

type ngIndicator struct {
	On      bool   `json:"on"`
	Color   string `json:"color"`
	BlinkMs int    `json:"blinkMs"`
	FadeMs  int    `json:"fadeMs"`
}

type ngLink struct {
	Enabled   bool    `json:"enabled"`
	State     string  `json:"state"`
	Host      string  `json:"host"`
	Endpoint  string  `json:"endpoint"`
	Attempts  int     `json:"attempts"`
	RetryInMs int     `json:"retryInMs"`
	Connects  int     `json:"connects"`
	Error     *string `json:"error"`
	LastError *string `json:"lastError"`
}

// awtrix3Screen is DisplayManager::ledsAsJson: a JSON array of 0xRRGGBB.
func awtrix3Screen(px []uint32) []byte {
	b := make([]byte, 0, 2+len(px)*9)
	b = append(b, '[')
	b = appendPixels(b, px)
	return append(b, ']')
}

// ngScreen is buildScreenJson: {"width":W,"height":H,"pixels":[...]}.
func ngScreen(px []uint32) []byte {
	b := make([]byte, 0, 48+len(px)*9)
	b = append(b, `{"width":`...)
	b = strconv.AppendInt(b, screenWidth, 10)
	b = append(b, `,"height":`...)
	b = strconv.AppendInt(b, int64(len(px)/screenWidth), 10)
	b = append(b, `,"pixels":[`...)
	b = appendPixels(b, px)
	return append(b, "]}"...)
}

func appendPixels(b []byte, px []uint32) []byte {
	for i, v := range px {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(v&0xFFFFFF), 10)
	}
	return b
}

// AWTRIX 3's effect names (effects.cpp) and transitions (HAeffectOptions).
const (
	awtrix3Effects = `["Fade","MovingLine","BrickBreaker","PingPong","Radar","Checkerboard",` +
		`"Fireworks","PlasmaCloud","Ripple","Snake","Pacifica","TheaterChase","Plasma","Matrix",` +
		`"SwirlIn","SwirlOut","LookingEyes","TwinklingStars","ColorWaves"]`
	awtrix3Transitions = `["Random","Slide","Dim","Zoom","Rotate","Pixelate","Curtain","Ripple","Blink","Reload","Fade"]`
)

// NG's retained state documents on connecting (docs/reference/mqtt.md),
// for a board without radio.
const (
	ngCapabilities = `{"effects":["Fade","MovingLine","BrickBreaker","PingPong","Radar","Checkerboard",` +
		`"Fireworks","PlasmaCloud","Ripple","Snake","Pacifica","TheaterChase","Plasma","Matrix",` +
		`"SwirlIn","SwirlOut","LookingEyes","TwinklingStars","ColorWaves"],"paletteEffects":[],` +
		`"transitions":["Random","Slide","Dim","Zoom","Rotate","Pixelate","Curtain","Ripple","Blink",` +
		`"Reload","Fade","Cover","Uncover","Split","Blinds","Blocks","Flash","Diamond","Wave","Rain",` +
		`"Melt","Interlace"],"overlays":["clear","snow","rain","drizzle","storm","thunder","frost"],` +
		`"palettes":["Cloud","Lava","Ocean","Forest","Stripe","Party","Heat","Rainbow"],` +
		`"radio":false,"gpio":{}}`
	ngSettings = `{"brightness":120,"autoBrightness":true,"autoTransition":true,` +
		`"transitionEffect":1,"textColor":"#FFFFFF"}`
	ngAudio = `{"available":false,"mp3":{"playing":false,"name":""},"stations":[]}`
)
