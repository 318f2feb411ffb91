package billing

import (
	"context"
	"fmt"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/internal/testkit/redistest"
)

// BenchmarkRecord measures one Record (new call id each time) against a
// real redis-server and miniredis: one script round trip per call.
func BenchmarkRecord(b *testing.B) {
	for _, bk := range []struct {
		name string
		rdb  func(b *testing.B) redis.UniversalClient
	}{
		{"redis", func(b *testing.B) redis.UniversalClient { return redistest.Start(b).Client() }},
		{"miniredis", func(b *testing.B) redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: miniredis.RunT(b).Addr()})
		}},
	} {
		b.Run(bk.name, func(b *testing.B) {
			l, _ := newTestLedger(b, bk.rdb(b), "bench:")
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, _, err := l.Record(ctx, outbound(fmt.Sprintf("wacid.b%d", i), "+447700900123", 56, nov)); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkPrice(b *testing.B) {
	rc := loadTestCard(b)
	b.ReportAllocs()
	_ = rc.For("2026-11")
	for b.Loop() {
		rc.For("2026-11").PriceCall("GB", 56, 12*60)
	}
}

// BenchmarkMessage measures metering one message: Sent, then a delivered
// billable Status (two reads and two scripts) against a real redis-server.
func BenchmarkMessage(b *testing.B) {
	l, _ := newTestLedger(b, redistest.Start(b).Client(), "benchmsg:")
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		id := fmt.Sprintf("wamid.b%d", i)
		if _, err := l.Sent(ctx, MessageSent{ID: id, Business: "waba1", User: "+447700900123", At: nov}); err != nil {
			b.Fatal(err)
		}
		if _, err := l.Status(ctx, MessageStatus{ID: id, Status: StatusDelivered, Billable: true, Type: "regular", Category: "utility", At: nov}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
