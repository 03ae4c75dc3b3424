package loadtest

// This file reports the MQTT comparisons with mosquitto: the idle
// scenario's memory per connection and the mqttstorm scenario's logins,
// in report.md and in the terminal table.

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
)

// writeMosquittoMD is the idle memory's comparison of the relay's MQTT
// clocks with mosquitto's.
func writeMosquittoMD(p func(string, ...any), m *MemoryStats) {
	mm := m.Mosquitto
	p("MQTT clocks, the relay against %s with as many idle clocks from the same client (AWTRIX 3's login and 24 subscriptions, "+
		"a PINGREQ every 15 s), in the same run, each on a fresh process:\n\n", mdText(mm.Version))
	p("| Broker | Connections | RSS before MB | RSS with clocks MB | Per connection KiB |\n|---|---:|---:|---:|---:|\n")
	if rm, ok := relayMQTTMemory(m); ok {
		p("| relay | %d | %s | %s | %s |\n", rm.Devices, num1(rm.RSSBeforeMB), num1(rm.RSSAfterMB), num1(rm.PerDeviceKiB))
	}
	p("| %s | %d | %s | %s | %s |\n\n", mdText(mm.Version), mm.Connections, num1(mm.RSSBeforeMB), num1(mm.RSSAfterMB), num1(mm.PerConnKiB))
	if mm.Ratio > 0 {
		p("The relay holds an idle MQTT clock in %s times mosquitto's memory per connection. "+
			"A relay connection is also a device session (token, router binding, the clock's filters and last states); "+
			"a mosquitto one is a client and its subscription tree's entries.\n\n", ratio(mm.Ratio))
	}
}

// relayMQTTMemory is the relay's measurement of MQTT clocks alone: their
// row of m.ByTransport, or m itself when every device was one.
func relayMQTTMemory(m *MemoryStats) (TransportMemory, bool) {
	for _, t := range m.ByTransport {
		if t.Transport == TransportMQTT {
			return t, true
		}
	}
	if m.MQTTDevices > 0 && m.QUICDevices+m.WebTransDevices+m.WebSocketDevs == 0 {
		return TransportMemory{Transport: TransportMQTT, Devices: m.MQTTDevices, RSSBeforeMB: m.RSSBeforeMB, RSSAfterMB: m.RSSAfterMB, PerDeviceKiB: m.PerDeviceKiB}, true
	}
	return TransportMemory{}, false
}

// writeMQTTStormMD is the mqttstorm scenario's section.
func writeMQTTStormMD(p func(string, ...any), st *MQTTStormStats) {
	p("## MQTT login storm\n\n")
	p("%d stock AWTRIX 3 clocks (the suite's lean MQTT client) logged in at once, at most %d in flight, to a fresh relay and then to a fresh %s, "+
		"each alone on the machine. CONNACK latency is measured at the clock, from the start of its TCP connect to its CONNACK, its first login; "+
		"logged in means subscribed too (AWTRIX 3's 24 SUBSCRIBEs, back to back, and their SUBACKs). "+
		"The relay's login checks a token and opens a device session; mosquitto's is anonymous.\n\n",
		st.Clocks, st.InFlight, mdText(st.Mosquitto.Server))
	p("Relay limits: %s.\n\n", mdText(st.RelayLimits))
	p("| | Relay | %s |\n|---|---:|---:|\n", mdText(st.Mosquitto.Server))
	r, m := st.Relay, st.Mosquitto
	row := func(name, a, b string) { p("| %s | %s | %s |\n", name, a, b) }
	row("Clocks logged in", fmt.Sprintf("%d of %d", r.Connected, r.Connected+r.Failed), fmt.Sprintf("%d of %d", m.Connected, m.Connected+m.Failed))
	row("Failed logins (retried)", strconv.FormatUint(r.DialErrors, 10), strconv.FormatUint(m.DialErrors, 10))
	row("All logged in after", secs(r.AllLoggedInS)+" s", secs(m.AllLoggedInS)+" s")
	row("Logins per second", num(r.ConnectsPS), num(m.ConnectsPS))
	row("CONNACK p50", ms(r.ConnackP50MS)+" ms", ms(m.ConnackP50MS)+" ms")
	row("CONNACK p99", ms(r.ConnackP99MS)+" ms", ms(m.ConnackP99MS)+" ms")
	row("CONNACK max", ms(r.ConnackMaxMS)+" ms", ms(m.ConnackMaxMS)+" ms")
	row("Subscribed p50", ms(r.ReadyP50MS)+" ms", ms(m.ReadyP50MS)+" ms")
	row("Subscribed p99", ms(r.ReadyP99MS)+" ms", ms(m.ReadyP99MS)+" ms")
	row("Broker CPU over the storm", secs(r.CPUS)+" s", secs(m.CPUS)+" s")
	row("Broker RSS after", num1(r.RSSMB)+" MB", num1(m.RSSMB)+" MB")
	p("\n")
}

// printMQTTStorm is the mqttstorm scenario's terminal table.
func printMQTTStorm(w io.Writer, st *MQTTStormStats) {
	fmt.Fprintf(w, "MQTT login storm: %d clocks at once (at most %d in flight); %s\n", st.Clocks, st.InFlight, st.RelayLimits)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "broker\tlogged in\tretried\tall in s\tlogins/s\tCONNACK p50 ms\tp99 ms\tmax ms\tsubscribed p99 ms\tCPU s\tRSS MB\t")
	for _, d := range []MQTTStormSide{st.Relay, st.Mosquitto} {
		fmt.Fprintf(tw, "%s\t%d/%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", d.Server, d.Connected, d.Connected+d.Failed, d.DialErrors,
			secs(d.AllLoggedInS), num(d.ConnectsPS), ms(d.ConnackP50MS), ms(d.ConnackP99MS), ms(d.ConnackMaxMS), ms(d.ReadyP99MS), secs(d.CPUS), num1(d.RSSMB))
	}
	tw.Flush()
}
