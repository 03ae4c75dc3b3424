package loadtest

// chart.svg: a hand-written SVG, so that the report needs no plotting
// dependency and pastes into any Markdown viewer.

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Chart geometry: 720x400, readable pasted at its own size.
const (
	chartW, chartH = 720, 400
	plotLeft       = 70
	plotRight      = chartW - 24
	plotTop        = 72
	plotBottom     = chartH - 58
)

// Series colours: light for p50, dark for p99; blue relay, orange baseline.
const (
	colRelayP50 = "#6baed6"
	colRelayP99 = "#08519c"
	colBaseP50  = "#fdae6b"
	colBaseP99  = "#d94801"
	colSLO      = "#d62728"
	colMaxRate  = "#2ca02c"
	colGrid     = "#e5e5e5"
	colAxis     = "#333333"
	colLocal    = "#74c476"
	colCross    = "#756bb1"
	colNonOK    = "#e34a33"
	colRestart  = "#fee8c8"
)

// svgDoc builds the chart text. Every string from outside goes through esc.
type svgDoc struct{ b bytes.Buffer }

func (d *svgDoc) f(format string, args ...any) { fmt.Fprintf(&d.b, format, args...) }

func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s)) // never fails on a strings.Builder
	return b.String()
}

func (d *svgDoc) text(x, y float64, anchor, extra, s string) {
	d.f(`<text x="%.1f" y="%.1f" text-anchor="%s"%s>%s</text>`+"\n", x, y, anchor, extra, esc(s))
}

// legendEntry is a swatch and its label; dash is a stroke-dasharray or "".
type legendEntry struct {
	label, color, dash string
	bar                bool
}

// legend lays entries out in rows under the title.
func (d *svgDoc) legend(entries []legendEntry) {
	x, y := float64(plotLeft), 46.0
	for _, e := range entries {
		w := 30 + 6.2*float64(len(e.label)) + 12
		if x+w > plotRight {
			x, y = plotLeft, y+18
		}
		if e.bar {
			d.f(`<rect x="%.1f" y="%.1f" width="14" height="10" fill="%s"/>`+"\n", x+4, y-9, e.color)
		} else {
			dash := ""
			if e.dash != "" {
				dash = fmt.Sprintf(` stroke-dasharray="%s"`, e.dash)
			}
			d.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2.5"%s/>`+"\n", x, y-4, x+24, y-4, e.color, dash)
		}
		d.text(x+30, y, "start", "", e.label)
		x += w
	}
}

func writeChart(w io.Writer, s *Summary) error {
	var d svgDoc
	d.f(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	d.f(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="12" fill="%s">`+"\n",
		chartW, chartH, chartW, chartH, colAxis)
	d.f(`<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", chartW, chartH)
	switch {
	case len(s.Steps) > 0:
		capacityChart(&d, s)
	case s.Soak != nil && len(s.Soak.Timeline) > 0:
		timelineChart(&d, s)
	default:
		barChart(&d, s)
	}
	d.f("</svg>\n")
	_, err := w.Write(d.b.Bytes())
	return err
}

// capacityChart draws p50 and p99 against the offered rate, relay and
// baseline, on a log latency axis (p99 grows by orders of magnitude past
// the knee), with the SLO and the max sustained rate.
func capacityChart(d *svgDoc, s *Summary) {
	title := fmt.Sprintf("%s: webhook latency vs offered rate", s.Scenario)
	d.f("<title>%s</title>\n", esc(title))
	d.text(chartW/2, 24, "middle", ` font-size="16" font-weight="bold"`, title)

	// Ranges.
	maxRate := 0.0
	lo, hi := math.Inf(1), math.Inf(-1)
	see := func(v float64) {
		if v > 0 {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	for _, steps := range [][]Step{s.Steps, s.BaselineSteps} {
		for _, st := range steps {
			maxRate = max(maxRate, st.Rate)
			see(st.Latency.P50)
			see(st.Latency.P99)
		}
	}
	see(s.SLOP99MS)
	if math.IsInf(lo, 1) {
		lo, hi = 0.1, 1
	}
	yLo := math.Pow(10, math.Floor(math.Log10(lo)))
	yHi := math.Pow(10, math.Ceil(math.Log10(hi)))
	if yHi <= yLo {
		yHi = yLo * 10
	}
	xStep := niceStep(maxRate, 6)
	if xStep <= 0 {
		xStep = 1
	}
	xHi := math.Ceil(maxRate*1.02/xStep) * xStep
	if xHi <= 0 {
		xHi = xStep
	}
	X := func(v float64) float64 { return plotLeft + v/xHi*(plotRight-plotLeft) }
	Y := func(v float64) float64 {
		return plotBottom - (math.Log10(v)-math.Log10(yLo))/(math.Log10(yHi)-math.Log10(yLo))*(plotBottom-plotTop)
	}

	// Grid and ticks.
	d.logGrid(yLo, yHi, Y)
	for v := 0.0; v <= xHi*1.0001; v += xStep {
		x := X(v)
		d.f(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", x, plotTop, x, plotBottom, colGrid)
		d.text(x, plotBottom+16, "middle", "", tick(v))
	}
	axes(d, "offered rate (webhooks/s)", "latency (ms, log scale)")

	// SLO and max sustained rate.
	if s.SLOP99MS > 0 {
		y := Y(s.SLOP99MS)
		d.f(`<line data-series="slo" x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-width="1.5" stroke-dasharray="6 4"/>`+"\n",
			plotLeft, y, plotRight, y, colSLO)
		d.text(plotRight-4, y-5, "end", fmt.Sprintf(` fill="%s"`, colSLO), "SLO p99 "+num(s.SLOP99MS)+" ms")
	}
	if s.MaxSustainedRate > 0 {
		x := X(s.MaxSustainedRate)
		d.f(`<line data-series="max-sustained" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="1.5" stroke-dasharray="2 3"/>`+"\n",
			x, plotTop, x, plotBottom, colMaxRate)
		anchor, dx := "start", 4.0
		if x > (plotLeft+plotRight)/2 {
			anchor, dx = "end", -4
		}
		d.text(x+dx, plotTop+14, anchor, fmt.Sprintf(` fill="%s"`, colMaxRate), "max sustained "+num(s.MaxSustainedRate)+"/s")
	}

	// Series.
	line := func(id, label, color string, width float64, steps []Step, pick func(LatencyMS) float64) {
		var pts []string
		for _, st := range steps {
			if v := pick(st.Latency); v > 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", X(st.Rate), Y(v)))
			}
		}
		if len(pts) == 0 {
			return
		}
		d.f(`<g data-series="%s"><title>%s</title>`+"\n", id, esc(label))
		d.f(`<polyline points="%s" fill="none" stroke="%s" stroke-width="%.1f" stroke-linejoin="round"/>`+"\n",
			strings.Join(pts, " "), color, width)
		for _, pt := range pts {
			x, y, _ := strings.Cut(pt, ",")
			d.f(`<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", x, y, color)
		}
		d.f("</g>\n")
	}
	p50 := func(l LatencyMS) float64 { return l.P50 }
	p99 := func(l LatencyMS) float64 { return l.P99 }
	entries := []legendEntry{}
	if len(s.BaselineSteps) > 0 {
		line("baseline-p50", "baseline p50", colBaseP50, 1.5, s.BaselineSteps, p50)
		line("baseline-p99", "baseline p99", colBaseP99, 2.5, s.BaselineSteps, p99)
	}
	line("relay-p50", "relay p50", colRelayP50, 1.5, s.Steps, p50)
	line("relay-p99", "relay p99", colRelayP99, 2.5, s.Steps, p99)
	entries = append(entries,
		legendEntry{label: "relay p50", color: colRelayP50},
		legendEntry{label: "relay p99", color: colRelayP99})
	if len(s.BaselineSteps) > 0 {
		entries = append(entries,
			legendEntry{label: "baseline p50", color: colBaseP50},
			legendEntry{label: "baseline p99", color: colBaseP99})
	}
	if s.SLOP99MS > 0 {
		entries = append(entries, legendEntry{label: "SLO", color: colSLO, dash: "6 4"})
	}
	if s.MaxSustainedRate > 0 {
		entries = append(entries, legendEntry{label: "max sustained", color: colMaxRate, dash: "2 3"})
	}
	d.legend(entries)
}

// barChart draws p50, p90, p99 and max, relay beside baseline, on a linear
// axis with each bar's value written on it.
func barChart(d *svgDoc, s *Summary) {
	title := fmt.Sprintf("%s: webhook latency, relay vs baseline", s.Scenario)
	type series struct {
		id, color string
		lat       LatencyMS
	}
	all := []series{{"relay", colRelayP99, s.Latency}}
	if c := s.Cluster; c != nil && c.Local > 0 && c.CrossNode > 0 {
		title = fmt.Sprintf("%s: webhook latency, local and cross-node deliveries", s.Scenario)
		all = append(all, series{"local", colLocal, c.LocalLatency}, series{"cross-node", colCross, c.CrossNodeLatency})
	}
	if s.Baseline != nil {
		all = append(all, series{"baseline", colBaseP99, s.Baseline.Latency})
	}
	d.f("<title>%s</title>\n", esc(title))
	d.text(chartW/2, 24, "middle", ` font-size="16" font-weight="bold"`, title)
	groups := []struct {
		name string
		pick func(LatencyMS) float64
	}{
		{"p50", func(l LatencyMS) float64 { return l.P50 }},
		{"p90", func(l LatencyMS) float64 { return l.P90 }},
		{"p99", func(l LatencyMS) float64 { return l.P99 }},
		{"max", func(l LatencyMS) float64 { return l.Max }},
	}
	top := 0.0
	for _, sr := range all {
		for _, g := range groups {
			top = max(top, g.pick(sr.lat))
		}
	}
	step := niceStep(top, 5)
	if step <= 0 {
		step = 1
	}
	yHi := math.Ceil(top*1.08/step) * step // room for the value labels
	Y := func(v float64) float64 { return plotBottom - v/yHi*(plotBottom-plotTop) }
	for v := 0.0; v <= yHi*1.0001; v += step {
		y := Y(v)
		d.f(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", plotLeft, y, plotRight, y, colGrid)
		d.text(plotLeft-6, y+4, "end", "", tick(v))
	}
	axes(d, "percentile", "latency (ms)")
	if top == 0 {
		d.text((plotLeft+plotRight)/2, (plotTop+plotBottom)/2, "middle", ` font-size="14"`, "no webhook latency measured in this scenario")
	}

	groupW := float64(plotRight-plotLeft) / float64(len(groups))
	barW := min(60, groupW*0.7/float64(len(all)))
	for gi, g := range groups {
		cx := plotLeft + groupW*(float64(gi)+0.5)
		d.text(cx, plotBottom+16, "middle", "", g.name)
	}
	var entries []legendEntry
	for si, sr := range all {
		d.f(`<g data-series="%s"><title>%s</title>`+"\n", sr.id, esc(sr.id))
		for gi, g := range groups {
			v := g.pick(sr.lat)
			cx := plotLeft + groupW*(float64(gi)+0.5)
			x := cx - barW*float64(len(all))/2 + barW*float64(si)
			y := Y(v)
			d.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x+1, y, barW-2, plotBottom-y, sr.color)
			d.text(x+barW/2, y-4, "middle", ` font-size="11"`, ms(v))
		}
		d.f("</g>\n")
		entries = append(entries, legendEntry{label: sr.id, color: sr.color, bar: true})
	}
	d.legend(entries)
}

// timelineChart draws a soak second by second: p50 and p99 of the 2xx
// answers on a log axis, the answers other than 2xx per second as bars on
// a linear axis at the right, and each restart's window shaded.
func timelineChart(d *svgDoc, s *Summary) {
	ss := s.Soak
	title := fmt.Sprintf("%s: latency and answers other than 2xx, second by second", s.Scenario)
	d.f("<title>%s</title>\n", esc(title))
	d.text(chartW/2, 24, "middle", ` font-size="16" font-weight="bold"`, title)

	n := len(ss.Timeline)
	lo, hi := math.Inf(1), math.Inf(-1)
	maxBad := uint64(0)
	for _, sec := range ss.Timeline {
		for _, v := range []float64{sec.P50MS, sec.P99MS} {
			if v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
		maxBad = max(maxBad, sec.NonOK)
	}
	if math.IsInf(lo, 1) {
		lo, hi = 0.1, 1
	}
	yLo := math.Pow(10, math.Floor(math.Log10(lo)))
	yHi := math.Pow(10, math.Ceil(math.Log10(hi)))
	if yHi <= yLo {
		yHi = yLo * 10
	}
	xHi := float64(n)
	X := func(v float64) float64 { return plotLeft + v/xHi*(plotRight-plotLeft) }
	Y := func(v float64) float64 {
		return plotBottom - (math.Log10(v)-math.Log10(yLo))/(math.Log10(yHi)-math.Log10(yLo))*(plotBottom-plotTop)
	}
	badStep := niceStep(float64(maxBad), 4)
	if badStep < 1 {
		badStep = 1
	}
	badHi := math.Ceil(float64(maxBad)*1.05/badStep) * badStep
	if badHi <= 0 {
		badHi = badStep
	}
	YB := func(v float64) float64 { return plotBottom - v/badHi*(plotBottom-plotTop) }

	// Restart windows under everything else.
	d.f(`<g data-series="restarts"><title>restarts</title>` + "\n")
	for i, r := range ss.Restarts {
		x0, x1 := X(r.AtS), X(r.AtS+r.OutS)
		d.f(`<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x0, plotTop, max(x1-x0, 2), plotBottom-plotTop, colRestart)
		d.text(x0+2, plotTop+12+float64(i%3)*12, "start", ` font-size="10"`, fmt.Sprintf("node %d", r.Node))
	}
	d.f("</g>\n")

	d.logGrid(yLo, yHi, Y)
	xStep := niceStep(xHi, 8)
	if xStep < 1 {
		xStep = 1
	}
	for v := 0.0; v <= xHi*1.0001; v += xStep {
		d.text(X(v), plotBottom+16, "middle", "", tick(v))
	}
	for v := 0.0; v <= badHi*1.0001; v += badStep {
		d.text(plotRight+4, YB(v)+4, "start", fmt.Sprintf(` font-size="10" fill="%s"`, colNonOK), tick(v))
	}
	axes(d, "seconds into the attack", "latency of 2xx answers (ms, log scale)")

	// Answers other than 2xx, one bar per second.
	barW := max((plotRight-plotLeft)/xHi-1, 1)
	d.f(`<g data-series="non-2xx"><title>answers other than 2xx per second</title>` + "\n")
	for _, sec := range ss.Timeline {
		if sec.NonOK > 0 {
			y := YB(float64(sec.NonOK))
			d.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="0.8"/>`+"\n", X(float64(sec.S)), y, barW, plotBottom-y, colNonOK)
		}
	}
	d.f("</g>\n")

	line := func(id, color string, width float64, pick func(SecondStats) float64) {
		var pts []string
		for _, sec := range ss.Timeline {
			if v := pick(sec); v > 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", X(float64(sec.S)+0.5), Y(v)))
			}
		}
		if len(pts) == 0 {
			return
		}
		d.f(`<g data-series="%s"><title>%s</title>`+"\n", id, esc(id))
		d.f(`<polyline points="%s" fill="none" stroke="%s" stroke-width="%.1f" stroke-linejoin="round"/>`+"\n",
			strings.Join(pts, " "), color, width)
		d.f("</g>\n")
	}
	line("p50", colRelayP50, 1.5, func(s SecondStats) float64 { return s.P50MS })
	line("p99", colRelayP99, 1.5, func(s SecondStats) float64 { return s.P99MS })
	d.legend([]legendEntry{
		{label: "p50", color: colRelayP50},
		{label: "p99", color: colRelayP99},
		{label: "not 2xx per second (right axis)", color: colNonOK, bar: true},
		{label: "restart: out of rotation to back", color: colRestart, bar: true},
	})
}

// axes draws the plot frame's left and bottom axes and their titles.
func axes(d *svgDoc, xTitle, yTitle string) {
	d.f(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"/>`+"\n", plotLeft, plotBottom, plotRight, plotBottom, colAxis)
	d.f(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"/>`+"\n", plotLeft, plotTop, plotLeft, plotBottom, colAxis)
	d.text((plotLeft+plotRight)/2, plotBottom+40, "middle", "", xTitle)
	cy := float64(plotTop+plotBottom) / 2
	d.f(`<text x="18" y="%.1f" text-anchor="middle" transform="rotate(-90 18 %.1f)">%s</text>`+"\n", cy, cy, esc(yTitle))
}

// niceStep is a 1, 2 or 5 times a power of ten step giving about n ticks
// over [0, span].
func niceStep(span float64, n int) float64 {
	if span <= 0 || n <= 0 {
		return 0
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

// logGrid draws the horizontal grid lines and ticks of a logarithmic y
// axis from yLo to yHi: 1, 2 and 5 per decade, or only 1s beyond four
// decades.
func (d *svgDoc) logGrid(yLo, yHi float64, Y func(float64) float64) {
	decades := math.Round(math.Log10(yHi / yLo))
	for dec := yLo; dec < yHi*1.001; dec *= 10 {
		for _, m := range []float64{1, 2, 5} {
			v := dec * m
			if v > yHi*1.001 || (m != 1 && decades > 4) {
				continue
			}
			y := Y(v)
			d.f(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", plotLeft, y, plotRight, y, colGrid)
			d.text(plotLeft-6, y+4, "end", "", tick(v))
		}
	}
}

// tick formats an axis value without float noise (0.30000000000000004).
func tick(v float64) string {
	if math.Abs(v) >= 10000 && v == math.Trunc(v) {
		if math.Mod(v, 1000) == 0 {
			return strconv.FormatFloat(v/1000, 'f', -1, 64) + "k"
		}
	}
	return strconv.FormatFloat(math.Round(v*1e6)/1e6, 'f', -1, 64)
}
