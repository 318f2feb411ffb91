package cloudapi

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

type behaviour struct {
	name    string
	reply   func(n int64, w http.ResponseWriter, r *http.Request)
	refuse  int64 // dials refused before reaching the server
	timeout time.Duration
}

func failFirst(fail func(w http.ResponseWriter, r *http.Request)) func(int64, http.ResponseWriter, *http.Request) {
	return func(n int64, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			fail(w, r)
			return
		}
		okFor(w, r)
	}
}

func dropConn(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

func behaviours() []behaviour {
	ok := func(_ int64, w http.ResponseWriter, r *http.Request) { okFor(w, r) }
	return []behaviour{
		{name: "500 then ok", reply: failFirst(func(w http.ResponseWriter, r *http.Request) {
			writeGraphError(w, 500, 1, "An unknown error occurred", "")
		})},
		{name: "503 always", reply: func(_ int64, w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }},
		{name: "429 then ok", reply: failFirst(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "1")
			writeGraphError(w, 429, 4, "Application request limit reached", "")
		})},
		{name: "400 meta error", reply: func(_ int64, w http.ResponseWriter, r *http.Request) {
			writeGraphError(w, 400, 138006, "No approved call permission", "")
		}},
		{name: "connection dropped then ok", reply: failFirst(dropConn)},
		{name: "attempt timeout then ok", timeout: 150 * time.Millisecond, reply: failFirst(func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		})},
		{name: "refused then ok", refuse: 1, reply: ok},
		{name: "refused always", refuse: 100, reply: ok},
	}
}

type outcome struct {
	ok      bool
	hits    int64
	unknown bool // error wraps ErrOutcomeUnknown
}

type actionCase struct {
	name string
	safe bool
	call func(ctx context.Context, c *Client) error
}

func actionCases() []actionCase {
	return []actionCase{
		{"pre_accept", true, func(ctx context.Context, c *Client) error { return c.PreAccept(ctx, callID, testSDP) }},
		{"accept", true, func(ctx context.Context, c *Client) error { return c.Accept(ctx, callID, testSDP, "") }},
		{"reject", true, func(ctx context.Context, c *Client) error { return c.Reject(ctx, callID) }},
		{"terminate", true, func(ctx context.Context, c *Client) error { return c.Terminate(ctx, callID) }},
		{"call_permissions", true, func(ctx context.Context, c *Client) error {
			_, err := c.CallPermissions(ctx, "447700900123")
			return err
		}},
		{"get_settings", true, func(ctx context.Context, c *Client) error { _, err := c.GetSettings(ctx); return err }},
		{"update_settings", true, func(ctx context.Context, c *Client) error {
			return c.UpdateSettings(ctx, Settings{Calling: CallingSettings{Status: "ENABLED"}})
		}},
		{"connect", false, func(ctx context.Context, c *Client) error {
			_, err := c.Connect(ctx, "447700900123", testSDP, "")
			return err
		}},
		{"send_permission_request", false, func(ctx context.Context, c *Client) error {
			_, err := c.SendCallPermissionRequest(ctx, "447700900123", "May we call you?")
			return err
		}},
	}
}

// want is the retry/no-retry matrix, with MaxRetries = 2.
func want(b string, safe bool) outcome {
	switch b {
	case "500 then ok", "429 then ok", "connection dropped then ok", "attempt timeout then ok":
		if safe {
			return outcome{ok: true, hits: 2}
		}
		return outcome{hits: 1, unknown: b != "429 then ok"}
	case "503 always":
		if safe {
			return outcome{hits: 3}
		}
		return outcome{hits: 1, unknown: true}
	case "400 meta error":
		return outcome{hits: 1}
	case "refused then ok":
		return outcome{ok: true, hits: 1}
	case "refused always":
		return outcome{hits: 0}
	}
	panic("unknown behaviour " + b)
}

func TestRetryMatrix(t *testing.T) {
	for _, a := range actionCases() {
		for _, b := range behaviours() {
			t.Run(a.name+"/"+b.name, func(t *testing.T) {
				srv := newMetaServer(t, b.reply)
				var dials interface{ Load() int64 }
				c, _ := testClient(t, srv.URL, func(cfg *Config) {
					if b.timeout > 0 {
						cfg.Timeout = b.timeout
					}
					if b.refuse > 0 {
						hc, d := refusingFirstDials(t, b.refuse)
						cfg.HTTPClient, dials = hc, d
					}
				})
				err := a.call(context.Background(), c)
				w := want(b.name, a.safe)
				if (err == nil) != w.ok {
					t.Fatalf("err = %v, want ok=%v", err, w.ok)
				}
				if got := srv.hits.Load(); got != w.hits {
					t.Errorf("server saw %d requests, want %d", got, w.hits)
				}
				if err != nil && errors.Is(err, ErrOutcomeUnknown) != w.unknown {
					t.Errorf("ErrOutcomeUnknown = %v, want %v (err %v)", !w.unknown, w.unknown, err)
				}
				if b.name == "refused always" && dials.Load() != 3 {
					t.Errorf("%d dials, want 3 (1 + MaxRetries)", dials.Load())
				}
				if b.name == "attempt timeout then ok" && !a.safe && !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("timeout error %v does not wrap context.DeadlineExceeded", err)
				}
			})
		}
	}
}

func TestEveryAttemptTimesOut(t *testing.T) {
	srv := newMetaServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	c, _ := testClient(t, srv.URL, func(cfg *Config) { cfg.Timeout = 50 * time.Millisecond })
	ctx := context.Background()
	err := c.Terminate(ctx, callID)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if srv.hits.Load() != 3 {
		t.Errorf("%d attempts, want 3", srv.hits.Load())
	}
	if got := testutil.ToFloat64(c.m.requests.WithLabelValues(ActionTerminate, ResultTimeout)); got != 3 {
		t.Errorf("timeout count %v, want 3", got)
	}
}

// signalHandler is a slog handler that reports each record on a channel.
type signalHandler struct {
	ch chan slog.Record
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.ch <- r:
	default:
	}
	return nil
}
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h signalHandler) WithGroup(string) slog.Handler      { return h }

func TestContextCancel(t *testing.T) {
	t.Run("while waiting for the answer", func(t *testing.T) {
		arrived := make(chan struct{}, 1)
		srv := newMetaServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			<-r.Context().Done()
		})
		c, _ := testClient(t, srv.URL, func(cfg *Config) { cfg.Timeout = time.Minute })
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- c.PreAccept(ctx, callID, testSDP) }()
		select {
		case <-arrived:
		case <-time.After(5 * time.Second):
			t.Fatal("request never reached the server")
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("PreAccept did not return after cancel")
		}
		if srv.hits.Load() != 1 {
			t.Errorf("%d hits after cancel, want 1", srv.hits.Load())
		}
		if got := testutil.ToFloat64(c.m.requests.WithLabelValues(ActionPreAccept, ResultCanceled)); got != 1 {
			t.Errorf("canceled count %v", got)
		}
	})
	t.Run("during backoff", func(t *testing.T) {
		srv := newMetaServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
		logs := make(chan slog.Record, 8)
		c, _ := testClient(t, srv.URL, func(cfg *Config) {
			cfg.RetryBaseDelay, cfg.RetryMaxDelay = time.Hour, time.Hour
			cfg.Logger = slog.New(signalHandler{ch: logs})
		})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- c.Terminate(ctx, callID) }()
		deadline := time.After(5 * time.Second)
	wait:
		for {
			select {
			case r := <-logs:
				if r.Level == slog.LevelWarn {
					break wait
				}
			case <-deadline:
				t.Fatal("no retry scheduled")
			}
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			var me *Error
			if !errors.As(err, &me) || me.HTTPStatus != 500 {
				t.Errorf("last attempt's error lost: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Terminate did not return after cancel")
		}
		if srv.hits.Load() != 1 {
			t.Errorf("%d hits, want 1", srv.hits.Load())
		}
	})
	t.Run("connect canceled after sending is an unknown outcome", func(t *testing.T) {
		arrived := make(chan struct{}, 1)
		srv := newMetaServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			<-r.Context().Done()
		})
		c, _ := testClient(t, srv.URL, func(cfg *Config) { cfg.Timeout = time.Minute })
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { _, err := c.Connect(ctx, "447700900123", testSDP, ""); done <- err }()
		select {
		case <-arrived:
		case <-time.After(5 * time.Second):
			t.Fatal("request never reached the server")
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrOutcomeUnknown) {
				t.Fatalf("err = %v, want context.Canceled and ErrOutcomeUnknown", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Connect did not return after cancel")
		}
	})
	t.Run("already canceled", func(t *testing.T) {
		srv := newMetaServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) { okFor(w, r) })
		c, _ := testClient(t, srv.URL, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := c.Connect(ctx, "447700900123", testSDP, ""); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		if srv.hits.Load() != 0 {
			t.Errorf("%d hits", srv.hits.Load())
		}
	})
}

func TestMetrics(t *testing.T) {
	srv := newMetaServer(t, failFirst(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(502) }))
	c, reg := testClient(t, srv.URL, nil)
	if err := c.PreAccept(context.Background(), callID, testSDP); err != nil {
		t.Fatal(err)
	}
	if err := c.Reject(context.Background(), callID); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"pre_accept server_error", testutil.ToFloat64(c.m.requests.WithLabelValues(ActionPreAccept, ResultServerError)), 1},
		{"pre_accept ok", testutil.ToFloat64(c.m.requests.WithLabelValues(ActionPreAccept, ResultOK)), 1},
		{"reject ok", testutil.ToFloat64(c.m.requests.WithLabelValues(ActionReject, ResultOK)), 1},
		{"pre_accept retries", testutil.ToFloat64(c.m.retries.WithLabelValues(ActionPreAccept)), 1},
		{"reject retries", testutil.ToFloat64(c.m.retries.WithLabelValues(ActionReject)), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
	for name, want := range map[string]int{
		"callgw_graph_requests_total":           3, // pre_accept{server_error,ok}, reject{ok}
		"callgw_graph_request_duration_seconds": 2, // pre_accept, reject
		"callgw_graph_retries_total":            2,
	} {
		n, err := testutil.GatherAndCount(reg, name)
		if err != nil || n != want {
			t.Errorf("%s: %d series (err %v), want %d", name, n, err, want)
		}
	}
	// A second client on the same registry shares the series.
	c2, err := New(Config{BaseURL: srv.URL, AccessToken: testToken, PhoneNumberID: "999"}, reg)
	if err != nil {
		t.Fatalf("second client on the same registry: %v", err)
	}
	c2.Close()
	if c2.m.requests != c.m.requests {
		t.Error("second client did not reuse the registered series")
	}
}

func TestLogsMaskNumbersAndHideSecrets(t *testing.T) {
	srv := newMetaServer(t, failFirst(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(502) }))
	var buf bytes.Buffer
	var mu sync.Mutex
	c, _ := testClient(t, srv.URL, func(cfg *Config) {
		cfg.Logger = slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
		cfg.HTTPClient, _ = refusingFirstDials(t, 1)
	})
	if _, err := c.SendCallPermissionRequest(context.Background(), "447700900123", "May we call you?"); err == nil {
		t.Fatal("expected the 502 to fail a non-repeatable request")
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if !strings.Contains(out, "0123") || !strings.Contains(out, "retrying") {
		t.Fatalf("expected masked number and a retry line in logs:\n%s", out)
	}
	for _, secret := range []string{"447700900123", testToken, "v=0", "May we call"} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain %q:\n%s", secret, out)
		}
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestBackoffBounds(t *testing.T) {
	c := &Client{cfg: Config{RetryBaseDelay: 100 * time.Millisecond, RetryMaxDelay: time.Second}}
	tests := []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		lo, hi     time.Duration
	}{
		{"first", 0, 0, 50 * time.Millisecond, 100 * time.Millisecond},
		{"second doubles", 1, 0, 100 * time.Millisecond, 200 * time.Millisecond},
		{"fourth", 3, 0, 400 * time.Millisecond, 800 * time.Millisecond},
		{"capped", 5, 0, 500 * time.Millisecond, time.Second},
		{"huge attempt does not overflow", 200, 0, 500 * time.Millisecond, time.Second},
		{"retry-after wins", 0, 700 * time.Millisecond, 700 * time.Millisecond, 700 * time.Millisecond},
		{"retry-after capped", 0, time.Minute, time.Second, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 200 {
				if d := c.backoff(tc.attempt, tc.retryAfter); d < tc.lo || d > tc.hi {
					t.Fatalf("backoff = %v, want in [%v, %v]", d, tc.lo, tc.hi)
				}
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{{"", 0}, {"3", 3 * time.Second}, {"-1", 0}, {"soon", 0}}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := parseRetryAfter(tc.in); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
