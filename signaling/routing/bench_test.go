package routing

import (
	"context"
	"fmt"
	"testing"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/config"
	"github.com/callgw/callgw/internal/testkit/redistest"
)

// BenchmarkPick: one round_robin pick plus its release over 3 of a team's
// 50 members, on a real redis-server over loopback.
func BenchmarkPick(b *testing.B) {
	srv := redistest.Start(b)
	agents := ""
	avail := make([]AgentID, 0, 50)
	for i := range 50 {
		agents += fmt.Sprintf("a%d, ", i)
		if i%16 == 0 {
			avail = append(avail, AgentID(fmt.Sprintf("a%d", i)))
		}
	}
	cfg, err := config.Parse([]byte(`teams:
  - id: t
    agents: [`+agents+`]
    strategy: round_robin
numbers:
  - {phone_number_id: "1", brand: B, token_env: T, teams: [t]}
`), "bench")
	if err != nil {
		b.Fatal(err)
	}
	everysec(b, srv)
	r, err := New(srv.Client(), Options{Config: cfg, Instance: "b"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		c := call.ID(fmt.Sprintf("c%d", i))
		p, err := r.Pick(ctx, "t", c, avail, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Release(ctx, p[0], c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkQueue: one Enqueue and one Dequeue.
func BenchmarkQueue(b *testing.B) {
	srv := redistest.Start(b)
	everysec(b, srv)
	r, err := New(srv.Client(), Options{Config: loadTeams(b), Instance: "b"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		if _, err := r.Enqueue(ctx, "idle", call.ID(fmt.Sprintf("c%d", i)), t0); err != nil {
			b.Fatal(err)
		}
		if _, err := r.Dequeue(ctx, "idle"); err != nil {
			b.Fatal(err)
		}
	}
}

// everysec measures the scripts, not the disk: redistest fsyncs every
// write (appendfsync always), production Redis usually everysec.
func everysec(b *testing.B, srv *redistest.Server) {
	if err := srv.Client().ConfigSet(context.Background(), "appendfsync", "everysec").Err(); err != nil {
		b.Fatal(err)
	}
}
