// Package clock is callgw's one injectable source of time: the current time
// and timers. Production uses Real; tests use Real inside a testing/synctest
// bubble (virtual time) or a Manual clock they advance by hand.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock tells the time and runs functions later.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d, unless stopped.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc.
type Timer interface {
	// Stop prevents the call; false if it already ran or was stopped.
	Stop() bool
}

// Real is the system clock.
type Real struct{}

func (Real) Now() time.Time                            { return time.Now() }
func (Real) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Func adapts a now function (kept for callers that inject only Now); its
// timers are real.
type Func func() time.Time

func (f Func) Now() time.Time                           { return f() }
func (Func) AfterFunc(d time.Duration, fn func()) Timer { return time.AfterFunc(d, fn) }

// Manual is a clock that moves only when Advance is called; due timers run
// synchronously inside Advance, in time order.
type Manual struct {
	mu     sync.Mutex
	now    time.Time
	timers []*manualTimer
}

// NewManual returns a Manual clock at t.
func NewManual(t time.Time) *Manual { return &Manual{now: t} }

type manualTimer struct {
	m    *Manual
	at   time.Time
	f    func()
	done bool
}

func (t *manualTimer) Stop() bool {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

// Now returns the manual time.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// AfterFunc schedules f at Now()+d.
func (m *Manual) AfterFunc(d time.Duration, f func()) Timer {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := &manualTimer{m: m, at: m.now.Add(d), f: f}
	m.timers = append(m.timers, t)
	return t
}

// Pending counts the timers not yet run or stopped.
func (m *Manual) Pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, t := range m.timers {
		if !t.done {
			n++
		}
	}
	return n
}

// Advance moves time forward by d, running every timer that falls due.
func (m *Manual) Advance(d time.Duration) {
	m.mu.Lock()
	end := m.now.Add(d)
	for {
		sort.SliceStable(m.timers, func(i, j int) bool { return m.timers[i].at.Before(m.timers[j].at) })
		var due *manualTimer
		for _, t := range m.timers {
			if !t.done && !t.at.After(end) {
				due = t
				break
			}
		}
		if due == nil {
			break
		}
		due.done = true
		m.now = due.at
		m.mu.Unlock()
		due.f()
		m.mu.Lock()
	}
	m.now = end
	live := m.timers[:0]
	for _, t := range m.timers {
		if !t.done {
			live = append(live, t)
		}
	}
	m.timers = live
	m.mu.Unlock()
}
