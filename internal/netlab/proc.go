package netlab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Msg is one line of the role protocol, in either direction: commands to a
// role on its stdin, events from it on stdout (prefixed "NETLAB ").
type Msg map[string]string

const eventPrefix = "NETLAB "

// Proc is a process running inside a namespace.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	in   io.WriteCloser
	logf func(format string, args ...any)

	mu     sync.Mutex
	events []Msg
	lines  []string // other stdout/stderr lines, for WaitLine
	notify chan struct{}
	done   chan struct{} // closed when the process exited and its output is read
	err    error
	once   sync.Once
}

// Start runs args inside ns until Stop (or t.Cleanup).
func (l *Lab) Start(ns NS, name string, env []string, args ...string) *Proc {
	l.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &Proc{Name: name, cmd: cmd, logf: l.t.Logf, notify: make(chan struct{}, 1), done: make(chan struct{})}
	in, err := cmd.StdinPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	errp, err := cmd.StderrPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	p.in = in
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("netlab: start %s: %v", name, err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.read(out) }()
	go func() { defer wg.Done(); p.read(errp) }()
	go func() {
		wg.Wait()
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
		p.poke()
	}()
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p
}

// Role re-executes this test binary inside ns as role (see RoleMain).
func (l *Lab) Role(ns NS, role string, env map[string]string) *Proc {
	l.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		l.t.Fatal(err)
	}
	e := []string{"NETLAB_ROLE=" + role}
	for k, v := range env {
		e = append(e, k+"="+v)
	}
	return l.Start(ns, role+"@"+ns.Tag, e, exe, "-test.run=^$")
}

func (p *Proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, eventPrefix); ok {
			var m Msg
			if json.Unmarshal([]byte(rest), &m) == nil {
				p.logf("%s: event %s", p.Name, rest)
				p.mu.Lock()
				p.events = append(p.events, m)
				p.mu.Unlock()
				p.poke()
				continue
			}
		}
		p.logf("%s: %s", p.Name, line)
		p.mu.Lock()
		p.lines = append(p.lines, line)
		p.mu.Unlock()
		p.poke()
	}
}

func (p *Proc) poke() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// Send writes one command to the role.
func (p *Proc) Send(m Msg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = p.in.Write(append(b, '\n'))
	return err
}

// Wait returns (and consumes) the first event with ev == name; an event
// "fatal" or the process ending fails the wait.
func (p *Proc) Wait(ctx context.Context, name string) (Msg, error) {
	for {
		p.mu.Lock()
		for i, m := range p.events {
			if m["ev"] == name || m["ev"] == "fatal" {
				p.events = append(p.events[:i:i], p.events[i+1:]...)
				p.mu.Unlock()
				if m["ev"] == "fatal" {
					return m, fmt.Errorf("netlab: %s: %s", p.Name, m["err"])
				}
				return m, nil
			}
		}
		p.mu.Unlock()
		select {
		case <-p.done:
			p.mu.Lock()
			err := p.err
			p.mu.Unlock()
			return nil, fmt.Errorf("netlab: %s exited (%v) before %q", p.Name, err, name)
		default:
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("netlab: %s: waiting for %q: %w", p.Name, name, ctx.Err())
		case <-p.notify:
			p.poke() // another waiter may be interested
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond): // let the other waiter run
			}
		case <-p.done:
		}
	}
}

// WaitLine waits for an output line containing substr.
func (p *Proc) WaitLine(ctx context.Context, substr string) error {
	seen := 0
	for {
		p.mu.Lock()
		for ; seen < len(p.lines); seen++ {
			if strings.Contains(p.lines[seen], substr) {
				p.mu.Unlock()
				return nil
			}
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return fmt.Errorf("netlab: %s: waiting for %q: %w", p.Name, substr, ctx.Err())
		case <-p.done:
			return fmt.Errorf("netlab: %s exited before printing %q", p.Name, substr)
		case <-p.notify:
		}
	}
}

// Stop closes the role's stdin (its signal to finish), then sends SIGTERM
// and finally SIGKILL to its process group; it waits for the exit. It is
// idempotent.
func (p *Proc) Stop() {
	p.once.Do(func() {
		_ = p.in.Close()
		for _, sig := range []syscall.Signal{0, syscall.SIGTERM, syscall.SIGKILL} {
			if sig != 0 {
				_ = syscall.Kill(-p.cmd.Process.Pid, sig)
			}
			select {
			case <-p.done:
				return
			case <-time.After(5 * time.Second):
			}
		}
		<-p.done
	})
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }
