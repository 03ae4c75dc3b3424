package loadtest

// This file is the soak scenario: the cluster's attack with churn and a
// rolling restart. During the attack, one node at a time is taken out of
// the generator's rotation, drained with SIGTERM (its devices move to the
// other nodes), started again on the same ports and put back once ready;
// after it, what each restart cost in answers other than 2xx.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// ScenarioSoak is cluster with churn and a rolling restart.
const ScenarioSoak = "soak"

// soak has no baseline: its attack is long and not about latency.
type soak struct{}

func (soak) info() scenarioInfo { return scenarioInfo{name: ScenarioSoak, cluster: true} }

// defaults: an attack as long as a rolling restart of every node once.
func (soak) defaults(c *Config) error {
	if c.Nodes < 2 {
		return errors.New("loadtest: soak restarts nodes one at a time and needs at least 2")
	}
	defaultTo(&c.Duration, time.Duration(c.Nodes)*c.RestartEvery)
	return nil
}

func (sc soak) run(ctx context.Context, r *runner, s *Summary) error { return r.load(ctx, s, sc) }

// attack is the cluster's with churn and the restarts beside it.
func (soak) attack(ctx context.Context, a *loadRun, s *Summary) ([]*attackOutcome, *attackOutcome) {
	cfg := a.r.cfg
	c := startChurn(ctx, a.sw, cfg.ChurnReconnect, cfg.ChurnRotate)
	rs := a.r.startRestarts(ctx, a.t, a.sw, a.smp)
	a.r.logf("soak: %d nodes, a restart every %v (%d in all), churn %.1f%% reconnects and %.1f%% rotations of the devices per second",
		cfg.Nodes, cfg.RestartEvery, rs.n, cfg.ChurnReconnect*100, cfg.ChurnRotate*100)
	var began time.Time
	var restarts []RestartStats
	out := a.steady(ctx, s, func(at time.Time) { began = at; rs.begin(at) }, func() { restarts = rs.stop() })
	s.Churn = c.stop()
	s.Soak = soakStats(restarts, out.results, out.failed, &a.routes, a.sw.Events(), began, cfg.Duration)
	s.Soak.RestartEveryS = cfg.RestartEvery.Seconds()
	return []*attackOutcome{out}, out
}

// pass: every webhook answered. Answers other than 2xx are the figures a
// soak measures, reported by code, not failures.
func (soak) pass(cfg Config, s *Summary, e attackErrors) {
	if n := s.StatusCounts["0"]; n > 0 {
		s.Failures = append(s.Failures, fmt.Sprintf("%d of %d webhooks got no answer (%s)", n, s.Requests, e.samples))
	}
	if ss := s.Soak; ss != nil {
		for i, rs := range ss.Restarts {
			if rs.Error != "" {
				s.Failures = append(s.Failures, fmt.Sprintf("restart %d (node %d): %s", i+1, rs.Node, rs.Error))
			}
		}
		if len(ss.Restarts) == 0 {
			s.Warnings = append(s.Warnings, fmt.Sprintf("no node was restarted: the attack (%v) is shorter than --restart-every (%v)", cfg.Duration, cfg.RestartEvery))
		}
	}
}

// maxSamples is how many answers other than 2xx a restart describes.
const maxSamples = 20

// emptyPoll is how often a restart looks at the swarm while its node
// drains, to time when the node's last device left.
const emptyPoll = 10 * time.Millisecond

// restarter restarts a cluster's nodes in turn during an attack.
type restarter struct {
	r     *runner        // static
	t     *target        // its nodes are the loop's until done closes
	sw    *Swarm         // static
	smp   meter          // static; the loop adds each new process to its node
	n     int            // restarts to make; static
	began chan time.Time // the attack's start, once (begin)
	end   chan struct{}  // closed by stop: no restart begins after it
	done  chan struct{}  // closed when the loop has returned

	start time.Time      // the attack's start; the loop's until done
	stats []RestartStats // the loop's until done
}

// startRestarts restarts the next node in turn every RestartEvery of the
// attack, the i-th at (i+1/2)*RestartEvery: floor(Duration/RestartEvery)
// restarts, one at a time (a slow one delays the next).
func (r *runner) startRestarts(ctx context.Context, t *target, sw *Swarm, smp meter) *restarter {
	rs := &restarter{r: r, t: t, sw: sw, smp: smp, n: int(r.cfg.Duration / r.cfg.RestartEvery),
		began: make(chan time.Time, 1), end: make(chan struct{}), done: make(chan struct{})}
	go rs.loop(ctx)
	return rs
}

// begin is the attack's start (attackSpec.started).
func (rs *restarter) begin(at time.Time) {
	select {
	case rs.began <- at:
	default:
	}
}

// stop lets a restart under way finish, makes no more, and returns them.
func (rs *restarter) stop() []RestartStats {
	close(rs.end)
	<-rs.done
	return rs.stats
}

func (rs *restarter) loop(ctx context.Context) {
	defer close(rs.done)
	select {
	case rs.start = <-rs.began:
	case <-rs.end:
		return
	case <-ctx.Done():
		return
	}
	every := rs.r.cfg.RestartEvery
	for i := range rs.n {
		at := rs.start.Add(every/2 + time.Duration(i)*every)
		t := time.NewTimer(time.Until(at))
		select {
		case <-t.C:
		case <-rs.end:
		case <-ctx.Done():
		}
		t.Stop()
		select {
		case <-rs.end:
			return
		case <-ctx.Done():
			return
		default:
		}
		st := rs.restart(ctx, i%len(rs.t.nodes))
		st.AtS = st.At.Sub(rs.start).Seconds()
		rs.r.logf("restart %d: node %d at %.1f s: settled %.2f s, drained %.2f s (empty after %.2f s, %d devices, %d moved, %d moves failed), back after %.2f s, out %.2f s%s",
			i+1, st.Node, st.AtS, st.SettleS, st.DrainS, st.EmptyS, st.Devices, st.Moved, st.MovesFailed, st.BackS, st.OutS,
			map[bool]string{true: ": " + st.Error, false: ""}[st.Error != ""])
		rs.stats = append(rs.stats, st)
		if st.Error != "" && !rs.t.nodes[st.Node].alive() {
			return // a node that did not come back: restart no other
		}
	}
}

// restart takes node k out of rotation, waits for its webhooks' answers,
// drains it with SIGTERM, starts it again and puts it back once ready.
func (rs *restarter) restart(ctx context.Context, k int) (st RestartStats) {
	fe, p := rs.t.fe, rs.t.nodes[k]
	st = RestartStats{Node: k, At: time.Now()}
	moved0, failed0 := rs.sw.Moves()
	defer func() {
		moved, failed := rs.sw.Moves()
		st.Moved, st.MovesFailed = moved-moved0, failed-failed0
	}()

	fe.setReady(k, false)
	if !fe.settle(ctx, k, requestTimeout(rs.r.cfg)) {
		st.Error = fmt.Sprintf("%d webhooks to node %d still unanswered after %v", fe.pending[k].Load(), k, requestTimeout(rs.r.cfg))
	}
	st.SettleS = time.Since(st.At).Seconds()

	st.Devices = rs.sw.OnNode(k)
	term := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- p.wait() }()
	st.EmptyS = -1
	tick := time.NewTicker(emptyPoll)
	var err error
wait:
	for {
		select {
		case err = <-exited:
			break wait
		case <-tick.C:
			if st.EmptyS < 0 && rs.sw.OnNode(k) == 0 {
				st.EmptyS = time.Since(term).Seconds()
			}
		}
	}
	tick.Stop()
	exit := time.Now()
	st.DrainS = exit.Sub(term).Seconds()
	if st.EmptyS < 0 && rs.sw.OnNode(k) == 0 {
		st.EmptyS = st.DrainS
	}
	if err != nil {
		st.Error = joinErr(st.Error, fmt.Sprintf("node %d exited badly: %v\n%s", k, err, p.logs))
	}

	np, err := p.restart(ctx)
	if err != nil {
		st.Error = joinErr(st.Error, fmt.Sprintf("node %d did not come back: %v", k, err))
		st.OutS = time.Since(st.At).Seconds()
		return st
	}
	st.BackS = time.Since(exit).Seconds()
	st.PID = np.PID
	rs.t.nodes[k] = np
	if k < len(rs.smp.nodes) && rs.smp.nodes[k] != nil {
		if sm, err := StartSampler(np.PID, sampleEvery); err == nil {
			rs.smp.nodes[k].add(sm)
		}
	}
	fe.setReady(k, true)
	st.OutS = time.Since(st.At).Seconds()
	return st
}

func joinErr(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// soakStats accounts the attack's results to the restarts' windows (out of
// rotation to back in) and to the time outside them, and makes the
// timeline. start is the attack's start, dur its length.
func soakStats(restarts []RestartStats, results []vegeta.Result, failed []failure, routes *routing, events map[int32][]event, start time.Time, dur time.Duration) *SoakStats {
	ss := &SoakStats{Restarts: restarts}
	in := func(at time.Time) int {
		for i, r := range restarts {
			if !at.Before(r.At) && at.Before(r.At.Add(time.Duration(r.OutS*float64(time.Second)))) {
				return i
			}
		}
		return -1
	}
	outside := dur
	for i := range restarts {
		r := &restarts[i]
		outside -= time.Duration(r.OutS * float64(time.Second))
		r.NonOKByCode = map[string]uint64{}
	}
	ss.OutsideS = max(outside, 0).Seconds()
	slices.SortFunc(failed, func(a, b failure) int { return a.at.Compare(b.at) })
	for _, f := range failed {
		fs := FailureSample{Answer: f.key, LatencyMS: millis(f.lat), WebhookNode: -1, Device: -1, DeviceNode: -1}
		if w, d, dn, ok := routes.get(f.id); f.ok && ok {
			fs.WebhookNode, fs.Device, fs.DeviceNode = w, d, dn
			fs.Events, fs.Churn = explain(events[int32(d)], f.at, f.at.Add(f.lat))
		}
		i := in(f.at)
		if i < 0 {
			ss.OutsideNonOK++
			if fs.Churn {
				ss.OutsideNonOKChurn++
			} else if len(ss.OutsideSamples) < maxSamples {
				fs.AfterTermS = f.at.Sub(start).Seconds() // here: seconds into the attack
				ss.OutsideSamples = append(ss.OutsideSamples, fs)
			}
			continue
		}
		r := &restarts[i]
		r.NonOK++
		r.NonOKByCode[f.key]++
		if fs.Churn {
			r.NonOKChurn++
		}
		if len(r.Samples) < maxSamples {
			fs.AfterTermS = f.at.Sub(r.At).Seconds() - r.SettleS
			r.Samples = append(r.Samples, fs)
		}
	}
	for i := range restarts {
		if len(restarts[i].NonOKByCode) == 0 {
			restarts[i].NonOKByCode = nil
		}
	}

	secs := max(int(dur/time.Second)+1, 1)
	lat := make([][]time.Duration, secs)
	ss.Timeline = make([]SecondStats, secs)
	for i := range ss.Timeline {
		ss.Timeline[i].S = i
	}
	bucket := func(at time.Time) int { return min(max(int(at.Sub(start)/time.Second), 0), secs-1) }
	for i := range results {
		r := &results[i]
		if j := in(r.Timestamp); j >= 0 {
			restarts[j].Requests++
		}
		b := bucket(r.Timestamp)
		ss.Timeline[b].Requests++
		if r.Code >= 200 && r.Code < 300 {
			lat[b] = append(lat[b], r.Latency)
		} else {
			ss.Timeline[b].NonOK++
		}
	}
	for i, l := range lat {
		if len(l) > 0 {
			slices.Sort(l)
			ss.Timeline[i].P50MS = millis(quantile(l, 0.50))
			ss.Timeline[i].P99MS = millis(quantile(l, 0.99))
		}
	}
	return ss
}

// codesText is "404 no_device: 3, 503 busy: 1", most first.
func codesText(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := sortedByCount(m)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
