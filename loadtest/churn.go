package loadtest

// This file is the churn scenario's disturbance: devices hang up and come
// back, and rotate their tokens over live sessions, while webhooks flow.

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

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
			}(rand.IntN(sw.Len()))
		}
	}
}

func (c *churner) stop() *ChurnStats {
	c.cancel()
	<-c.done
	return &c.stats
}
