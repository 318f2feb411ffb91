// Package redistest starts real redis-server processes for tests: one per
// call, on a free loopback port, with its own data directory, stopped when the
// test ends. It owns nothing else; production code never imports it.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is one redis-server process owned by a test.
type Server struct {
	tb   testing.TB
	Addr string // host:port
	dir  string
	args []string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start launches redis-server on a free loopback port (AOF on, so Restart
// keeps data) and registers its shutdown with tb.Cleanup. It fails the test
// with a clear message when redis-server is not installed: the README's test
// command installs it.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redistest: redis-server not found on PATH (the README's test command installs it: apt-get install redis-server): %v", err)
	}
	_ = bin
	port := freePort(tb)
	s := &Server{tb: tb, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: tb.TempDir()}
	s.args = []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always",
		"--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning",
	}
	s.start()
	tb.Cleanup(s.Stop)
	return s
}

func freePort(tb testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("redistest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) start() {
	s.tb.Helper()
	cmd := exec.Command("redis-server", s.args...)
	logf, err := os.Create(filepath.Join(s.dir, fmt.Sprintf("redis-%d.log", time.Now().UnixNano())))
	if err != nil {
		s.tb.Fatalf("redistest: log file: %v", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		s.tb.Fatalf("redistest: start redis-server: %v", err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err == nil {
			_, _ = c.Write([]byte("PING\r\n"))
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "+PONG") {
				return
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			s.tb.Fatalf("redistest: redis-server did not answer on %s: %s", s.Addr, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// URL returns a redis:// URL for the server.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Client returns a new go-redis client for the server, closed at test end.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	s.tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop kills the server (SIGKILL: like a crash; AOF with fsync always keeps
// every acknowledged write). Safe to call twice.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	_, _ = cmd.Process.Wait()
}

// Restart stops the server and starts it again on the same port and data
// directory, so tests can show what survives a Redis blip.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	s.start()
}

// Flush empties the database between sub-tests.
func (s *Server) Flush(ctx context.Context) error {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	return c.FlushAll(ctx).Err()
}
