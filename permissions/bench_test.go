package permissions

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/testkit/redistest"
)

// benchDecisions runs op b.N times against a local redis-server and reports
// decisions per second and the p99 latency of one decision (one round trip).
func benchDecisions(b *testing.B, setup func(ctx context.Context, tr *Tracker, p Pair), op func(ctx context.Context, tr *Tracker, p Pair, i int) error) {
	srv := redistest.Start(b)
	tr, err := New(srv.Client(), Config{}, newClock(), nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	p := Pair{Business: "106540352242922", User: "447700900123"}
	if setup != nil {
		setup(ctx, tr, p)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		s := time.Now()
		if err := op(ctx, tr, p, i); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(s))
	}
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "decisions/s")
}

func BenchmarkCheckCall(b *testing.B) {
	benchDecisions(b,
		func(ctx context.Context, tr *Tracker, p Pair) {
			if _, err := tr.Grant(ctx, p, Grant{Permanent: true, Source: UserAction, ID: "g"}); err != nil {
				b.Fatal(err)
			}
			for i := range 50 { // a busy pair: 50 connected calls in the window
				if _, err := tr.RecordCall(ctx, p, fmt.Sprintf("c%d", i), CallConnected); err != nil {
					b.Fatal(err)
				}
			}
		},
		func(ctx context.Context, tr *Tracker, p Pair, _ int) error {
			d, err := tr.CheckCall(ctx, p)
			if err == nil && !d.Allowed {
				err = fmt.Errorf("denied: %s", d.Reason)
			}
			return err
		})
}

func BenchmarkRecordRequest(b *testing.B) {
	benchDecisions(b, nil, func(ctx context.Context, tr *Tracker, p Pair, i int) error {
		p.User = fmt.Sprintf("4477%08d", i) // a fresh pair each time: every request is counted
		d, err := tr.RecordRequest(ctx, p, "wamid.bench")
		if err == nil && !d.Allowed {
			err = fmt.Errorf("denied: %s", d.Reason)
		}
		return err
	})
}
