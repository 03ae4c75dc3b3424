package loadtest

// This file is the churn scenario and its disturbance, which soak shares:
// devices hang up and come back, and rotate their tokens over live
// sessions, while webhooks flow.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// ScenarioChurn is reconnects and token rotations under traffic.
const ScenarioChurn = "churn"

type churn struct{}

func (churn) info() scenarioInfo { return scenarioInfo{name: ScenarioChurn, baseline: true} }

func (churn) defaults(*Config) error { return nil }

func (sc churn) run(ctx context.Context, r *runner, s *Summary) error { return r.load(ctx, s, sc) }

// attack is fanin's with churn beside it.
func (churn) attack(ctx context.Context, a *loadRun, s *Summary) ([]*attackOutcome, *attackOutcome) {
	cfg := a.r.cfg
	c := startChurn(ctx, a.sw, cfg.ChurnReconnect, cfg.ChurnRotate)
	out := a.steady(ctx, s, nil, nil)
	s.Churn = c.stop()
	return []*attackOutcome{out}, out
}

// pass: 404 is a device between sessions or a just-rotated token, 502 a
// device that hung up mid-message, 503 and 504 one that is coming back.
func (churn) pass(_ Config, s *Summary, e attackErrors) {
	if n := failedOtherThan(s, "404", "502", "503", "504"); n > 0 {
		s.Failures = append(s.Failures, fmt.Sprintf("%d webhooks failed other than 404/502/503/504 (%s)", n, e.samples))
	}
}

// Churn pacing.
const (
	churnTick     = 100 * time.Millisecond
	rotateTimeout = 5 * time.Second
	maxRotating   = 64 // rotations in flight; more are skipped and counted
)

// churner reconnects and rotates random devices during an attack.
type churner struct {
	cancel context.CancelFunc
	done   chan struct{}
	stats  ChurnStats // owned by the loop until done closes
}

func startChurn(ctx context.Context, sw *Swarm, reconnect, rotate float64) *churner {
	ctx, cancel := context.WithCancel(ctx)
	c := &churner{cancel: cancel, done: make(chan struct{})}
	c.stats.ReconnectPerS, c.stats.RotatePerS = reconnect, rotate
	go c.loop(ctx, sw, reconnect, rotate)
	return c
}

func (c *churner) loop(ctx context.Context, sw *Swarm, reconnect, rotate float64) {
	defer close(c.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	var rotated, failed atomic.Uint64
	defer func() {
		wg.Wait()
		c.stats.Rotations, c.stats.RotationsFailed = rotated.Load(), failed.Load()
	}()
	sem := make(chan struct{}, maxRotating)
	per := churnTick.Seconds() * float64(sw.Len())
	var owedReconnect, owedRotate float64
	t := time.NewTicker(churnTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		owedReconnect += reconnect * per
		for ; owedReconnect >= 1; owedReconnect-- {
			if sw.Reconnect(rand.IntN(sw.Len())) {
				c.stats.Reconnects++
			}
		}
		owedRotate += rotate * per
		for ; owedRotate >= 1; owedRotate-- {
			i := rand.IntN(sw.Len())
			if sw.MQTT(i) { // a stock clock cannot rotate its token (its MQTT password)
				c.stats.RotationsSkipped++
				continue
			}
			select {
			case sem <- struct{}{}:
			default:
				c.stats.RotationsSkipped++
				continue
			}
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				defer func() { <-sem }()
				rctx, cancel := context.WithTimeout(ctx, rotateTimeout)
				defer cancel()
				if err := sw.Rotate(rctx, i); err == nil {
					rotated.Add(1)
				} else if !errors.Is(err, errNotConnected) {
					failed.Add(1)
				}
			}(i)
		}
	}
}

func (c *churner) stop() *ChurnStats {
	c.cancel()
	<-c.done
	return &c.stats
}
