package netlab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// RoleFunc is the body of a role run in a child process. It returns when its
// work is done or ctx ends (stdin closed, SIGTERM).
type RoleFunc func(ctx context.Context, io *RoleIO) error

// RoleIO is a role's side of the line protocol.
type RoleIO struct {
	mu   sync.Mutex
	cmds chan Msg
}

// Emit sends an event (ev is its name) to the test.
func (r *RoleIO) Emit(ev string, kv ...string) {
	m := Msg{"ev": ev}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(os.Stdout, "%s%s\n", eventPrefix, b)
}

// Commands delivers the test's commands; it is closed when stdin closes.
func (r *RoleIO) Commands() <-chan Msg { return r.cmds }

// RoleMain runs the role named by NETLAB_ROLE and exits, or returns at once
// when the variable is not set (the normal test run). Call it first in
// TestMain.
func RoleMain(roles map[string]RoleFunc) {
	name := os.Getenv("NETLAB_ROLE")
	if name == "" {
		return
	}
	f, ok := roles[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "netlab: unknown role %q\n", name)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(ctx)
	r := &RoleIO{cmds: make(chan Msg, 16)}
	go func() {
		defer close(r.cmds)
		defer cancel() // stdin closed: the test wants us gone
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			var m Msg
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				r.cmds <- m
			}
		}
	}()
	err := f(ctx, r)
	stop()
	if err != nil {
		r.Emit("fatal", "err", err.Error())
		os.Exit(1)
	}
	os.Exit(0)
}
