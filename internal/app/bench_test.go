package app

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/callgw/callgw/metasim"
)

// BenchmarkWebhookToPreAccept measures, per user-initiated call, the time
// from the simulator starting to deliver the signed connect webhook to the
// moment the gateway's pre_accept (carrying a complete SDP answer: ICE
// gathered, DTLS role set) reaches the Graph API. It includes signature
// check, parsing, Redis de-duplication and state, the Pion answer and the
// Graph request. Reports p50 and p99 in milliseconds.
//
//	go test -run '^$' -bench WebhookToPreAccept -benchtime 200x ./internal/app/
func BenchmarkWebhookToPreAccept(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ta := startAppB(b)
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		uc, err := ta.Sim.PlaceCall(ctx, metasim.CallOptions{From: "+447700900999"})
		if err != nil {
			b.Fatal(err)
		}
		pre, err := ta.Sim.WaitRequest(ctx, func(r metasim.GraphRequest) bool { return r.Action == "pre_accept" && r.CallID == uc.ID() })
		if err != nil {
			b.Fatal(err)
		}
		var sent time.Time
		for deadline := time.Now().Add(5 * time.Second); sent.IsZero() && time.Now().Before(deadline); {
			for _, w := range ta.Sim.Webhooks() { // recorded once its delivery returned
				if bytes.Contains(w.Body, []byte(uc.ID())) && bytes.Contains(w.Body, []byte(`"connect"`)) {
					sent = w.Time
					break
				}
			}
			if sent.IsZero() {
				time.Sleep(time.Millisecond)
			}
		}
		if sent.IsZero() {
			b.Fatal("no connect webhook")
		}
		lat = append(lat, pre.Time.Sub(sent))
		if err := uc.WaitState(ctx, metasim.Ended); err != nil { // rejected: no agent
			b.Fatal(err)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}
