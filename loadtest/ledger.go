package loadtest

// This file is the accounting. Every webhook carries a unique id (in the
// URL as &lt=ID, which the relay ignores, and in the body as "lt":[ID,DEV]);
// the swarm counts what each device received, and the ledger matches the
// two after the attack: every 200 must have reached its device exactly
// once, and nothing may reach the wrong device.

import (
	"strconv"
	"strings"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Ledger is the accounting of one run's webhooks.
type Ledger struct {
	Results    uint64 // webhooks accounted
	Delivered  uint64 // 2xx, received exactly once by the right device
	Lost       uint64 // 2xx, never received
	Duplicated uint64 // received more than once (any status)
	Misrouted  uint64 // received by a device other than its token's (any status)
	// Late: not 2xx, yet a device received it (a 504 after the device got
	// it, a 502 when it hung up before answering). Not an error.
	Late uint64
	// Received is the sum of receptions of the ids in the results; the
	// swarm's own total should equal it (Unmatched otherwise).
	Received uint64
	// NoID counts results whose URL carries no id: a bug in the suite.
	NoID uint64

	// First few lost, duplicated and misrouted ids, for the failure text.
	LostIDs, DuplicatedIDs, MisroutedIDs []uint64
}

// sampleIDs is how many ids of each kind a Ledger keeps.
const sampleIDs = 5

// seenFunc reports how often id reached a device and whether it reached
// the wrong one (Swarm.Seen).
type seenFunc func(id uint64) (count uint32, misrouted bool)

// Add accounts one result.
func (l *Ledger) Add(r *vegeta.Result, seen seenFunc) {
	l.Results++
	id, ok := idFromURL(r.URL)
	if !ok {
		l.NoID++
		return
	}
	n, mis := seen(id)
	l.Received += uint64(n)
	ok2xx := r.Code >= 200 && r.Code < 300
	switch {
	case mis:
		l.Misrouted++
		l.MisroutedIDs = keep(l.MisroutedIDs, id)
	case n > 1:
		l.Duplicated++
		l.DuplicatedIDs = keep(l.DuplicatedIDs, id)
	case ok2xx && n == 1:
		l.Delivered++
	case ok2xx:
		l.Lost++
		l.LostIDs = keep(l.LostIDs, id)
	case n == 1:
		l.Late++
	}
}

func keep(ids []uint64, id uint64) []uint64 {
	if len(ids) < sampleIDs {
		ids = append(ids, id)
	}
	return ids
}

// idFromURL reads the id from the webhook URL's last query parameter,
// &lt=ID, as the targeter writes it.
func idFromURL(u string) (uint64, bool) {
	i := strings.LastIndex(u, "&lt=")
	if i < 0 {
		return 0, false
	}
	id, err := strconv.ParseUint(u[i+len("&lt="):], 10, 64)
	return id, err == nil
}

// Failures says what is wrong with the accounting; none when it is clean.
// handled is the swarm's count of every message its devices received.
func (l *Ledger) Failures(handled uint64) []string {
	var f []string
	if l.Lost > 0 {
		f = append(f, "lost "+strconv.FormatUint(l.Lost, 10)+" messages answered 200 but never received (ids "+idList(l.LostIDs)+")")
	}
	if l.Duplicated > 0 {
		f = append(f, "duplicated "+strconv.FormatUint(l.Duplicated, 10)+" messages (ids "+idList(l.DuplicatedIDs)+")")
	}
	if l.Misrouted > 0 {
		f = append(f, "misrouted "+strconv.FormatUint(l.Misrouted, 10)+" messages to the wrong device (ids "+idList(l.MisroutedIDs)+")")
	}
	if l.NoID > 0 {
		f = append(f, strconv.FormatUint(l.NoID, 10)+" results without a message id")
	}
	if handled != l.Received {
		f = append(f, "devices received "+strconv.FormatUint(handled, 10)+" messages, the results account for "+strconv.FormatUint(l.Received, 10))
	}
	return f
}

func idList(ids []uint64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(id, 10)
	}
	return strings.Join(s, ", ")
}
