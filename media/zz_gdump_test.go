package media

import (
	"context"
	"os"
	"runtime/pprof"
	"testing"
	"time"
)

func TestZZGoroutineDump(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := newTestEngine(t, nil)
	f0, _ := os.Create("/tmp/g0.txt")
	pprof.Lookup("goroutine").WriteTo(f0, 1)
	f0.Close()
	h := bridged(t, e, false)
	h.meta.waitFor(ctx, "silence", func(got []rxPacket) bool { return len(got) >= 3 })
	f1, _ := os.Create("/tmp/g1.txt")
	pprof.Lookup("goroutine").WriteTo(f1, 2)
	f1.Close()
}
