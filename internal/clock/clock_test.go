package clock

import (
	"testing"
	"time"
)

func TestManual(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := NewManual(t0)
	var got []int
	m.AfterFunc(2*time.Second, func() { got = append(got, 2) })
	stopped := m.AfterFunc(time.Second, func() { got = append(got, 1) })
	m.AfterFunc(3*time.Second, func() {
		got = append(got, 3)
		m.AfterFunc(time.Second, func() { got = append(got, 4) })
	})
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop should report true once")
	}
	m.Advance(2500 * time.Millisecond)
	if len(got) != 1 || got[0] != 2 || !m.Now().Equal(t0.Add(2500*time.Millisecond)) {
		t.Fatalf("after 2.5s: %v at %v", got, m.Now())
	}
	m.Advance(10 * time.Second)
	if len(got) != 3 || got[1] != 3 || got[2] != 4 {
		t.Fatalf("after 12.5s: %v", got)
	}
}
