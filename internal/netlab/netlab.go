package netlab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// prefix starts every namespace name a Lab creates: "cgl<pid>-<n>-".
const prefix = "cgl"

// Check reports (wrapping ErrUnavailable) why namespaces cannot be built here.
func Check() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: needs root (ip netns, nft)", ErrUnavailable)
	}
	for _, bin := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%w: %s not installed (apt-get install iproute2 nftables)", ErrUnavailable, bin)
		}
	}
	name := fmt.Sprintf("%s%d-probe", prefix, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("%w: ip netns add: %s", ErrUnavailable, bytes.TrimSpace(out))
	}
	defer exec.Command("ip", "netns", "del", name).Run() //nolint:errcheck
	if out, err := exec.Command("ip", "netns", "exec", name, "nft", "list", "ruleset").CombinedOutput(); err != nil {
		return fmt.Errorf("%w: nft in a namespace: %s", ErrUnavailable, bytes.TrimSpace(out))
	}
	return nil
}

// NS is one network namespace of a Lab.
type NS struct {
	Name string // full name (ip netns)
	Tag  string // the short name the test gave
}

// Lab is a set of namespaces owned by one test.
type Lab struct {
	t   testing.TB
	pfx string

	mu    sync.Mutex
	nss   []NS
	procs []*Proc
}

var labSeq struct {
	sync.Mutex
	n int
}

// New returns an empty Lab; the test is skipped when Check fails. Everything
// the Lab creates is removed by t.Cleanup. Namespaces left by killed test
// processes are swept first.
func New(t testing.TB) *Lab {
	t.Helper()
	if err := Check(); err != nil {
		t.Skipf("skipping network test: %v", err)
	}
	sweep()
	labSeq.Lock()
	labSeq.n++
	n := labSeq.n
	labSeq.Unlock()
	l := &Lab{t: t, pfx: fmt.Sprintf("%s%d-%d-", prefix, os.Getpid(), n)}
	t.Cleanup(l.close)
	return l
}

// sweep deletes namespaces named after a process that no longer exists.
func sweep() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		pidS, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidS)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat("/proc/" + pidS); err == nil {
			continue // its owner still runs
		}
		_ = exec.Command("ip", "netns", "del", name).Run()
	}
}

func (l *Lab) close() {
	l.mu.Lock()
	procs, nss := l.procs, l.nss
	l.procs, l.nss = nil, nil
	l.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop()
	}
	for _, ns := range nss {
		if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
			l.t.Logf("netlab: ip netns del %s: %v %s", ns.Name, err, out)
		}
	}
}

// NS creates a namespace with loopback up, IPv4 forwarding on and IPv6 off.
func (l *Lab) NS(tag string) NS {
	l.t.Helper()
	ns := NS{Name: l.pfx + tag, Tag: tag}
	l.run("ip", "netns", "add", ns.Name)
	l.mu.Lock()
	l.nss = append(l.nss, ns)
	l.mu.Unlock()
	l.Exec(ns, "ip", "link", "set", "lo", "up")
	// IPv4 only: fresh IPv6 link-local addresses stay tentative (DAD) for
	// a second or two and binding them fails.
	l.Exec(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.disable_ipv6=1",
		"net.ipv6.conf.default.disable_ipv6=1")
	return ns
}

// Link joins a and b with a veth pair named aIf in a and bIf in b, gives
// each end its address (CIDR, "" for none) and brings both up.
func (l *Lab) Link(a NS, aIf, aAddr string, b NS, bIf, bAddr string) {
	l.t.Helper()
	l.run("ip", "link", "add", aIf, "netns", a.Name, "type", "veth", "peer", "name", bIf, "netns", b.Name)
	for _, e := range []struct {
		ns       NS
		ifc, adr string
	}{{a, aIf, aAddr}, {b, bIf, bAddr}} {
		if e.adr != "" {
			l.Exec(e.ns, "ip", "addr", "add", e.adr, "dev", e.ifc)
		}
		l.Exec(e.ns, "ip", "link", "set", e.ifc, "up")
	}
}

// Addr adds an address (CIDR) to an interface of ns.
func (l *Lab) Addr(ns NS, ifc, addr string) {
	l.t.Helper()
	l.Exec(ns, "ip", "addr", "add", addr, "dev", ifc)
}

// Loopback adds addresses (services' public IPs) to ns's loopback
// interface: they are reachable over every link of ns (no dummy module
// needed).
func (l *Lab) Loopback(ns NS, addrs ...string) {
	l.t.Helper()
	for _, a := range addrs {
		l.Exec(ns, "ip", "addr", "add", a, "dev", "lo")
	}
}

// Route adds a route in ns: dst ("default" or CIDR) via gw.
func (l *Lab) Route(ns NS, dst, gw string) {
	l.t.Helper()
	l.Exec(ns, "ip", "route", "add", dst, "via", gw)
}

// NFT loads an nftables ruleset into ns.
func (l *Lab) NFT(ns NS, ruleset string) {
	l.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns.Name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("netlab: nft in %s: %v\n%s\nruleset:\n%s", ns.Tag, err, out, ruleset)
	}
}

// Exec runs a short command inside ns and fails the test on error.
func (l *Lab) Exec(ns NS, args ...string) string {
	l.t.Helper()
	return l.run(append([]string{"ip", "netns", "exec", ns.Name}, args...)...)
}

func (l *Lab) run(args ...string) string {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("netlab: %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
