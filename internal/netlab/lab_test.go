package netlab_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/callgw/callgw/internal/netlab"
)

func netnsList(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// A namespace left by a killed test run (its pid is gone) is swept by the
// next Lab; the Lab's own namespaces are gone after its test.
func TestLabCleansUp(t *testing.T) {
	if err := netlab.Check(); err != nil {
		t.Skipf("skipping network test: %v", err)
	}
	const stale = "cgl999999999-1-stale" // no such pid
	if out, err := exec.Command("ip", "netns", "add", stale).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", stale).Run() })
	var name string
	t.Run("lab", func(t *testing.T) {
		lab := netlab.New(t)
		a, b := lab.NS("a"), lab.NS("b")
		lab.Link(a, "x", "10.9.0.1/24", b, "y", "10.9.0.2/24")
		if out := lab.Exec(b, "ip", "addr", "show", "y"); !strings.Contains(out, "10.9.0.2/24") || !strings.Contains(out, "UP") {
			t.Fatalf("veth end in b: %s", out)
		}
		name = a.Name
		if strings.Contains(netnsList(t), stale) {
			t.Fatal("the stale namespace was not swept")
		}
	})
	if strings.Contains(netnsList(t), name) {
		t.Fatalf("namespace %s left behind", name)
	}
}
