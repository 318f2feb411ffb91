package routing

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/call"
)

// startClusterNode runs a one-node Redis Cluster serving every slot: it
// refuses (CROSSSLOT) any script or command whose keys span slots, which is
// what a real multi-node cluster would break on.
func startClusterNode(t *testing.T) *redis.ClusterClient {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server not found (apt-get install redis-server): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
		"--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	node := redis.NewClient(&redis.Options{Addr: addr})
	defer node.Close()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for node.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("cluster node did not answer")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := node.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	for {
		info, _ := node.ClusterInfo(ctx).Result()
		if strings.Contains(info, "cluster_state:ok") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster not ok: %s", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestRedisCluster runs every operation once on a cluster client.
func TestRedisCluster(t *testing.T) {
	c := startClusterNode(t)
	r, err := New(c, Options{Config: loadTeams(t), Instance: "i1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	step := func(name string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for _, team := range []TeamID{"rr", "idle", "all"} {
		_, err := r.Pick(ctx, team, call.ID("c-"+string(team)), ids("a", "b", "c", "z"), ids("b"))
		step("pick "+string(team), err)
	}
	step("release", r.Release(ctx, "a", "c-rr"))
	step("reserve", r.Reserve(ctx, "d", "c9", time.Minute))
	step("freed", r.AgentFreed(ctx, "d", t0))
	step("busy", r.AgentBusy(ctx, "d"))
	_, err = r.Enqueue(ctx, "rr", "q1", t0)
	step("enqueue", err)
	_, err = r.Enqueue(ctx, "idle", "q2", t0)
	step("enqueue", err)
	_, err = r.Position(ctx, "rr", "q1")
	step("position", err)
	_, err = r.SnapshotAll(ctx, t0)
	step("snapshot", err)
	_, err = r.DequeueFor(ctx, "a")
	step("dequeue for", err)
	_, err = r.Expired(ctx, t0.Add(time.Hour))
	step("expired", err)
	_, err = r.Dequeue(ctx, "rr")
	if !errors.Is(err, ErrQueueEmpty) {
		t.Fatalf("dequeue: %v", err)
	}
	u := user(t, "+447700900123", "GB.abc")
	_, _, err = r.CreateTask(ctx, "rr", u, "m1", t0)
	step("create task", err)
	_, _, err = r.CreateTask(ctx, "rr", u, "m2", t0)
	step("update task", err)
	_, err = r.Claim(ctx, "rr", "cb-m1", "a")
	step("claim", err)
	_, err = r.Tasks(ctx, "rr", TaskClaimed, 0)
	step("tasks", err)
	closed, err := r.CloseForUser(ctx, u, "r1")
	step("close for user", err)
	if len(closed) != 1 {
		t.Fatalf("closed %+v", closed)
	}
}
