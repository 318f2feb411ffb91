package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "callgw.yaml")
	write(t, path, base)
	reg := prometheus.NewRegistry()
	changed := make(chan *Config, 4)
	l, err := NewLoader(path, LoaderOptions{Registry: reg, OnChange: func(c *Config) { changed <- c }})
	if err != nil {
		t.Fatal(err)
	}
	first := l.Current()
	if _, ok := first.Team("a"); !ok {
		t.Fatal("team a missing")
	}

	// A bad file is refused and changes nothing.
	write(t, path, strings.Replace(base, "teams: [a]", "teams: [zz]", 1))
	got, err := l.Reload()
	if !errors.Is(err, ErrUnknownTeam) || got != first || l.Current() != first {
		t.Fatalf("bad reload: err %v, config changed %v", err, l.Current() != first)
	}
	if v := testutil.ToFloat64(l.reloads.WithLabelValues("error")); v != 1 {
		t.Errorf("error reloads = %v", v)
	}
	select {
	case <-changed:
		t.Fatal("OnChange ran for a refused file")
	default:
	}

	// A good file arrives through Watch on a signal.
	write(t, path, strings.Replace(base, "[x, y]", "[x, y, z]", 1))
	ctx, cancel := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- l.Watch(ctx, sig) }()
	sig <- syscall.SIGHUP
	select {
	case c := <-changed:
		if team, _ := c.Team("a"); !team.Has("z") || l.Current() != c {
			t.Fatalf("reloaded config = %+v", team)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no reload after the signal")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch = %v", err)
	}
	if v := testutil.ToFloat64(l.reloads.WithLabelValues("ok")); v != 1 {
		t.Errorf("ok reloads = %v", v)
	}
}

func TestNewLoaderRefusesBadFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := NewLoader(filepath.Join(dir, "missing.yaml"), LoaderOptions{}); !errors.Is(err, ErrNoFile) {
		t.Fatalf("missing file: %v", err)
	}
	path := filepath.Join(dir, "bad.yaml")
	write(t, path, "teams: [\n")
	if _, err := NewLoader(path, LoaderOptions{}); !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), "bad.yaml:") {
		t.Fatalf("bad file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	b, _ := os.ReadFile("testdata/valid.yaml")
	f.Add(b)
	f.Add([]byte(base))
	f.Add([]byte("teams: [\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := Parse(in, "fuzz")
		if (c == nil) == (err == nil) {
			t.Fatalf("config %v with error %v", c, err)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("untyped error %v", err)
			}
		}
	})
}
