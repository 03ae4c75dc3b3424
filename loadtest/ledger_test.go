package loadtest

import (
	"strconv"
	"strings"
	"testing"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// seenMap is a seenFunc over a fixed table: id -> receptions, and the ids
// that reached the wrong device.
func seenMap(counts map[uint64]uint32, wrong ...uint64) seenFunc {
	return func(id uint64) (uint32, bool) {
		for _, w := range wrong {
			if w == id {
				return counts[id], true
			}
		}
		return counts[id], false
	}
}

func result(id uint64, code uint16) *vegeta.Result {
	return &vegeta.Result{Code: code, URL: "https://127.0.0.1:1/cloud?mode=notify&token=T&lt=" + strconv.FormatUint(id, 10)}
}

func TestLedger(t *testing.T) {
	seen := seenMap(map[uint64]uint32{
		1: 1, // delivered
		// 2: lost
		3: 2, // duplicated
		4: 1, // misrouted (flagged)
		5: 1, // 504 the device saw: late
		// 6: 503, never seen: fine
		7: 3, // 502 seen three times: duplicated all the same
	}, 4)
	var l Ledger
	for _, r := range []*vegeta.Result{
		result(1, 200), result(2, 200), result(3, 200), result(4, 200),
		result(5, 504), result(6, 503), result(7, 502),
		{Code: 200, URL: "https://127.0.0.1:1/cloud?mode=notify&token=T"}, // no id
	} {
		l.Add(r, seen)
	}
	want := Ledger{Results: 8, Delivered: 1, Lost: 1, Duplicated: 2, Misrouted: 1, Late: 1, Received: 1 + 2 + 1 + 1 + 3, NoID: 1,
		LostIDs: []uint64{2}, DuplicatedIDs: []uint64{3, 7}, MisroutedIDs: []uint64{4}}
	if l.Results != want.Results || l.Delivered != want.Delivered || l.Lost != want.Lost || l.Duplicated != want.Duplicated ||
		l.Misrouted != want.Misrouted || l.Late != want.Late || l.Received != want.Received || l.NoID != want.NoID {
		t.Fatalf("ledger\n got %+v\nwant %+v", l, want)
	}
	if len(l.LostIDs) != 1 || l.LostIDs[0] != 2 || len(l.DuplicatedIDs) != 2 || len(l.MisroutedIDs) != 1 {
		t.Fatalf("sample ids: lost %v duplicated %v misrouted %v", l.LostIDs, l.DuplicatedIDs, l.MisroutedIDs)
	}

	f := l.Failures(l.Received)
	if len(f) != 4 {
		t.Fatalf("failures %q, want lost, duplicated, misrouted and no-id", f)
	}
	for i, w := range []string{"lost 1", "duplicated 2", "misrouted 1", "without a message id"} {
		if !strings.Contains(f[i], w) {
			t.Errorf("failure %d = %q, want it to mention %q", i, f[i], w)
		}
	}
	// A reception the results do not account for is a failure too.
	if f := l.Failures(l.Received + 1); !strings.Contains(f[len(f)-1], "account for") {
		t.Errorf("unmatched receptions: %q", f)
	}
}

func TestLedgerClean(t *testing.T) {
	counts := map[uint64]uint32{}
	var l Ledger
	for id := range uint64(1000) {
		code := uint16(200)
		switch {
		case id%10 == 3:
			code = 503 // shed before the device: not seen
		case id%10 == 7:
			code = 404 // a rotated token: not seen
		default:
			counts[id] = 1
		}
		l.Add(result(id, code), seenMap(counts))
	}
	if l.Delivered != 800 || l.Lost+l.Duplicated+l.Misrouted+l.Late+l.NoID != 0 {
		t.Fatalf("clean run: %+v", l)
	}
	if f := l.Failures(800); len(f) != 0 {
		t.Fatalf("clean run fails: %q", f)
	}
}

func TestIDFromURL(t *testing.T) {
	for u, want := range map[string]int64{
		"https://h:1/cloud?mode=notify&token=abc&lt=0":                    0,
		"https://h:1/cloud?mode=notify&token=abc&lt=18446744073709551615": -2, // max uint64, checked below
		"https://h:1/cloud?mode=notify&token=abc&lt=12345":                12345,
		"https://h:1/cloud?mode=notify&token=abc":                         -1,
		"https://h:1/cloud?mode=notify&token=abc&lt=":                     -1,
		"https://h:1/cloud?mode=notify&token=abc&lt=12x":                  -1,
	} {
		id, ok := idFromURL(u)
		switch {
		case want == -1 && ok:
			t.Errorf("%s: id %d, want none", u, id)
		case want == -2 && (!ok || id != 1<<64-1):
			t.Errorf("%s: id %d %v, want max uint64", u, id, ok)
		case want >= 0 && (!ok || id != uint64(want)):
			t.Errorf("%s: id %d %v, want %d", u, id, ok, want)
		}
	}
}

func TestSeenTable(t *testing.T) {
	var st seenTable
	ids := []uint64{0, 1, seenChunkLen - 1, seenChunkLen, 5*seenChunkLen + 7, seenChunks*seenChunkLen - 1}
	for _, id := range ids {
		if !st.record(id, false) {
			t.Fatalf("record(%d) refused", id)
		}
	}
	st.record(1, false)
	st.record(seenChunkLen, true)
	if st.record(seenChunks*seenChunkLen, false) {
		t.Fatal("an id beyond the table was recorded")
	}
	for _, id := range ids {
		n, mis := st.get(id)
		wantN, wantMis := uint32(1), false
		switch id {
		case 1:
			wantN = 2
		case seenChunkLen:
			wantN, wantMis = 2, true
		}
		if n != wantN || mis != wantMis {
			t.Errorf("id %d: count %d misrouted %v, want %d %v", id, n, mis, wantN, wantMis)
		}
	}
	if n, mis := st.get(2); n != 0 || mis {
		t.Errorf("unseen id: %d %v", n, mis)
	}
	if n, _ := st.get(3 * seenChunkLen); n != 0 {
		t.Errorf("id in an unallocated chunk: %d", n)
	}
}
