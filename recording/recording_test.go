package recording

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/internal/clock"
	"github.com/callgw/callgw/internal/oggopus"
	"github.com/callgw/callgw/internal/testkit/redistest"
	"github.com/callgw/callgw/storage"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

type rig struct {
	meta  *fakeMeta
	rdb   *redis.Client
	store *storage.Local
	reg   *prometheus.Registry
	clk   clock.Clock
	f     *Fetcher
	arch  *Archive
}

func newRig(t *testing.T, clk clock.Clock, mod func(*FetcherConfig)) *rig {
	t.Helper()
	srv := redistest.Start(t)
	r := &rig{meta: newFakeMeta(t), rdb: srv.Client(), reg: prometheus.NewRegistry(), clk: clk}
	var err error
	r.store, err = storage.NewLocal(storage.LocalConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := FetcherConfig{GraphURL: r.meta.graphURL(), Token: r.meta.token, TempDir: t.TempDir(), Clock: clk,
		Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Registerer: r.reg,
		Retention: PerNumber(30, map[string]int{"15550000001": 1})}
	if mod != nil {
		mod(&cfg)
	}
	if r.f, err = NewFetcher(r.store, r.rdb, cfg); err != nil {
		t.Fatal(err)
	}
	if r.arch, err = NewArchive(r.store, r.rdb, ArchiveConfig{Clock: clk, TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) notice(number, callID, mediaID string, kind Kind, data []byte) Notice {
	mime := kind.ContentType()
	sha, url := r.meta.add(mediaID, mime, data)
	return Notice{Number: number, CallID: callID, Kind: kind, MediaID: mediaID, SHA256: sha, MimeType: mime, URL: url, At: r.clk.Now()}
}

func (r *rig) stored(t *testing.T, key string) []byte {
	t.Helper()
	rc, _, err := r.store.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return b
}

func TestFetch(t *testing.T) {
	audio, err := os.ReadFile("../testdata/audio/caller-440.ogg")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		setup      func(r *rig, n *Notice)
		wantErr    error
		wantStatus Status
		wantInfo   int // GET /<MEDIA_ID> calls
		result     string
	}{
		{name: "live URL", wantStatus: StatusStored, result: "ok"},
		{name: "expired URL: fresh one from GET media", setup: func(r *rig, n *Notice) { r.meta.gen[n.MediaID]++ },
			wantStatus: StatusStored, wantInfo: 1, result: "ok"},
		{name: "link older than 5 min: refreshed before trying", setup: func(r *rig, n *Notice) { n.At = n.At.Add(-6 * time.Minute) },
			wantStatus: StatusStored, wantInfo: 1, result: "ok"},
		{name: "server errors retried with backoff", setup: func(r *rig, n *Notice) { r.meta.fail[n.MediaID] = 2 },
			wantStatus: StatusStored, result: "ok"},
		{name: "bad sha rejected", setup: func(r *rig, n *Notice) { r.meta.corrupt[n.MediaID] = true },
			wantErr: ErrBadSHA256, wantStatus: StatusPending, result: "bad_sha"},
		{name: "no sha in webhook: taken from GET media", setup: func(r *rig, n *Notice) { n.SHA256, n.URL = "", "" },
			wantStatus: StatusStored, wantInfo: 1, result: "ok"},
		{name: "media gone", setup: func(r *rig, n *Notice) { r.meta.gone[n.MediaID] = true; r.meta.gen[n.MediaID]++ },
			wantErr: ErrMediaGone, wantStatus: StatusFailed, wantInfo: 1, result: "given_up"},
		{name: "failures past the tries stay pending", setup: func(r *rig, n *Notice) { r.meta.fail[n.MediaID] = 10 },
			wantErr: errors.New("HTTP 500"), wantStatus: StatusPending, result: "error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, clock.Real{}, nil)
			n := r.notice("15550000002", "wacid.AB/C+D=", "1000000000000001", KindRecording, audio)
			if c.setup != nil {
				r.meta.mu.Lock()
				c.setup(r, &n)
				r.meta.mu.Unlock()
			}
			e, err := r.f.Fetch(context.Background(), n)
			if c.wantErr == nil && err != nil || c.wantErr != nil && (err == nil || !errors.Is(err, c.wantErr) && !strings.Contains(err.Error(), c.wantErr.Error())) {
				t.Fatalf("err %v, want %v", err, c.wantErr)
			}
			got, ierr := r.f.idx.get(context.Background(), n.CallID, KindRecording)
			if ierr != nil {
				t.Fatal(ierr)
			}
			if got.Status != c.wantStatus || e.Status != c.wantStatus {
				t.Fatalf("status %v (returned %v), want %v; entry %+v", got.Status, e.Status, c.wantStatus, got)
			}
			if info, _ := r.meta.counts(); info != c.wantInfo {
				t.Errorf("GET media calls %d, want %d", info, c.wantInfo)
			}
			if v := testutil.ToFloat64(r.f.m.downloads.WithLabelValues("recording", c.result)); v < 1 {
				t.Errorf("callgw_recording_downloads_total{result=%q} = %v", c.result, v)
			}
			objs, _ := r.store.List(context.Background(), "")
			switch c.wantStatus {
			case StatusStored:
				wantKey := "15550000002/2026/11/29/wacid.AB_C+D=/recording.ogg"
				if got.Key != wantKey || got.Size != int64(len(audio)) || got.SHA256 == "" || got.LastError != "" {
					t.Fatalf("entry %+v", got)
				}
				if now := time.Now(); got.StoredAt.After(now) || got.ExpiresAt.Sub(got.StoredAt) != 30*24*time.Hour {
					t.Fatalf("stored_at %v expires_at %v: want 30 days", got.StoredAt, got.ExpiresAt)
				}
				if !bytes.Equal(r.stored(t, wantKey), audio) {
					t.Fatal("stored bytes differ")
				}
				if p, _ := r.f.Pending(context.Background()); p != 0 {
					t.Fatalf("pending %d", p)
				}
			default:
				if len(objs) != 0 {
					t.Fatalf("objects stored after failure: %v", objs)
				}
				if got.LastError == "" {
					t.Fatal("no error recorded")
				}
			}
			if c.wantStatus == StatusPending {
				if p, _ := r.f.Pending(context.Background()); p != 1 || testutil.ToFloat64(r.f.m.pending) != 1 {
					t.Fatalf("pending %d, gauge %v", p, testutil.ToFloat64(r.f.m.pending))
				}
				if !got.NextAttempt.After(time.Now().Add(4 * time.Minute)) {
					t.Fatalf("next attempt %v: want ~5 min later", got.NextAttempt)
				}
			}
		})
	}
}

func TestDuplicateWebhook(t *testing.T) {
	r := newRig(t, clock.Real{}, nil)
	n := r.notice("15550000002", "wacid.D", "1000000000000002", KindTranscript, []byte(`{"transcript":{}}`))
	if _, err := r.f.Fetch(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	_, before := r.meta.counts()
	if err := r.f.Enqueue(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if _, err := r.f.RetryDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, after := r.meta.counts(); after != before {
		t.Fatalf("duplicate webhook downloaded again: %d → %d", before, after)
	}
	if v := testutil.ToFloat64(r.f.m.downloads.WithLabelValues("transcript", "duplicate")); v != 1 {
		t.Fatalf("duplicate counted %v", v)
	}
}

func TestBadNoticeChangesNothing(t *testing.T) {
	r := newRig(t, clock.Real{}, nil)
	good := Notice{Number: "1555", CallID: "wacid.X", Kind: KindRecording, MediaID: "123", At: t0,
		SHA256: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}
	for name, mod := range map[string]func(*Notice){
		"no number": func(n *Notice) { n.Number = "" }, "number with slash": func(n *Notice) { n.Number = "1/2" },
		"no call": func(n *Notice) { n.CallID = "" }, "pipe in call": func(n *Notice) { n.CallID = "a|b" },
		"our own kind": func(n *Notice) { n.Kind = KindUserAudio }, "no media": func(n *Notice) { n.MediaID = "" },
		"media traversal": func(n *Notice) { n.MediaID = "../x" }, "sha not base64": func(n *Notice) { n.SHA256 = "zz" },
		"sha short": func(n *Notice) { n.SHA256 = "AAAA" }, "url scheme": func(n *Notice) { n.URL = "file:///etc/passwd" },
		"no time": func(n *Notice) { n.At = time.Time{} },
	} {
		n := good
		mod(&n)
		if err := r.f.Enqueue(context.Background(), n); !errors.Is(err, ErrBadNotice) {
			t.Errorf("%s: %v, want ErrBadNotice", name, err)
		}
	}
	if keys, _ := r.rdb.Keys(context.Background(), "*").Result(); len(keys) != 0 {
		t.Fatalf("bad notices wrote %v", keys)
	}
}

// The background job retries a failed download until Meta's 7 days end.
func TestRetryUntilMetaRetention(t *testing.T) {
	clk := clock.NewManual(t0)
	r := newRig(t, clk, func(c *FetcherConfig) { c.Tries = 1 })
	ctx := context.Background()
	heal := r.notice("15550000002", "wacid.HEAL", "1000000000000003", KindRecording, []byte("audio-1"))
	never := r.notice("15550000002", "wacid.NEVER", "1000000000000004", KindRecording, []byte("audio-2"))
	r.meta.mu.Lock()
	r.meta.fail[heal.MediaID], r.meta.fail[never.MediaID] = 3, 1<<30
	r.meta.mu.Unlock()
	for _, n := range []Notice{heal, never} {
		if _, err := r.f.Fetch(ctx, n); err == nil {
			t.Fatal("first try should fail")
		}
	}
	if testutil.ToFloat64(r.f.m.pending) != 2 {
		t.Fatalf("pending gauge %v", testutil.ToFloat64(r.f.m.pending))
	}
	// Nothing is due before the retry time.
	if n, _ := r.f.RetryDue(ctx); n != 0 {
		t.Fatalf("retried early: %d", n)
	}
	for i := 0; i < 3; i++ {
		clk.Advance(6 * time.Hour)
		_, _ = r.f.RetryDue(ctx)
	}
	e, _ := r.f.idx.get(ctx, heal.CallID, KindRecording)
	if e.Status != StatusStored || string(r.stored(t, e.Key)) != "audio-1" {
		t.Fatalf("healed entry %+v", e)
	}
	e, _ = r.f.idx.get(ctx, never.CallID, KindRecording)
	if e.Status != StatusPending || e.Attempts < 3 {
		t.Fatalf("never entry %+v", e)
	}
	// Keep retrying across the week; after Meta's retention the entry is failed.
	for i := 0; i < 40 && e.Status == StatusPending; i++ {
		clk.Advance(6 * time.Hour)
		_, _ = r.f.RetryDue(ctx)
		e, _ = r.f.idx.get(ctx, never.CallID, KindRecording)
	}
	if e.Status != StatusFailed || e.LastError == "" || clk.Now().Before(never.At.Add(7*24*time.Hour)) {
		t.Fatalf("after a week: %+v at %v", e, clk.Now())
	}
	if p, _ := r.f.Pending(ctx); p != 0 || testutil.ToFloat64(r.f.m.pending) != 0 {
		t.Fatalf("pending %d after giving up", p)
	}
	if v := testutil.ToFloat64(r.f.m.downloads.WithLabelValues("recording", "given_up")); v != 1 {
		t.Fatalf("given_up %v", v)
	}
}

// Run downloads what Enqueue announced without being asked again.
func TestRunDownloadsEnqueued(t *testing.T) {
	results := make(chan Entry, 4)
	r := newRig(t, clock.Real{}, func(c *FetcherConfig) { c.OnResult = func(e Entry) { results <- e } })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.f.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	n := r.notice("15550000002", "wacid.RUN", "1000000000000005", KindRecording, []byte("run"))
	if err := r.f.Enqueue(ctx, n); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-results:
		if e.Status != StatusStored {
			t.Fatalf("%+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not download the enqueued notice")
	}
	if err := r.f.Run(ctx); err == nil {
		t.Fatal("second Run accepted")
	}
}

func TestRetentionAndAudit(t *testing.T) {
	clk := clock.NewManual(t0)
	r := newRig(t, clk, nil)
	ctx := context.Background()
	short := r.notice("15550000001", "wacid.SHORT", "1000000000000006", KindRecording, []byte("short-lived"))
	long := r.notice("15550000002", "wacid.LONG", "1000000000000007", KindRecording, []byte("long-lived"))
	doc, _ := os.ReadFile("testdata/transcript.json")
	tr := r.notice("15550000002", "wacid.LONG", "1000000000000008", KindTranscript, doc)
	for _, n := range []Notice{short, long, tr} {
		if _, err := r.f.Fetch(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	ret, err := NewRetainer(r.store, r.rdb, RetainerConfig{Clock: clk, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}

	// Supervisor access, audited.
	calls, err := r.arch.List(ctx, "sup-1", "15550000002", time.Time{}, time.Time{}, 0)
	if err != nil || len(calls) != 1 || len(calls[0].Entries) != 2 {
		t.Fatalf("list: %v %+v", err, calls)
	}
	rc, e, err := r.arch.Open(ctx, "sup-1", "wacid.LONG", KindRecording, ActionPlay)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "long-lived" || e.Kind != KindRecording {
		t.Fatalf("open: %q %+v", b, e)
	}
	_, turns, err := r.arch.Transcript(ctx, "sup-2", "wacid.LONG")
	if err != nil || len(turns) != 3 {
		t.Fatalf("transcript: %v %+v", err, turns)
	}
	if _, _, err := r.arch.Open(ctx, "", "wacid.LONG", KindRecording, ActionDownload); !errors.Is(err, ErrNoActor) {
		t.Fatalf("anonymous open: %v", err)
	}
	if _, err := r.arch.Link(ctx, "sup-1", "wacid.LONG", KindRecording, time.Minute); !errors.Is(err, storage.ErrBadConfig) {
		t.Fatalf("link without signer: %v", err)
	}
	if _, _, err := r.arch.Open(ctx, "sup-1", "wacid.NONE", KindRecording, ActionDownload); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open missing: %v", err)
	}
	log, err := r.arch.Audit().Read(ctx, AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range log {
		got = append(got, a.Who+" "+a.Action.String()+" "+a.CallID+" "+a.Kind.String())
		if !a.At.Equal(t0) {
			t.Fatalf("audit time %v", a.At)
		}
	}
	want := []string{"sup-1 list  unknown", "sup-1 play wacid.LONG recording", "sup-2 view wacid.LONG transcript"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("audit:\n%v\nwant\n%v", got, want)
	}
	if only, _ := r.arch.Audit().Read(ctx, AuditQuery{Who: "sup-2"}); len(only) != 1 {
		t.Fatalf("audit by who: %+v", only)
	}
	if later, _ := r.arch.Audit().Read(ctx, AuditQuery{From: t0.Add(time.Hour)}); len(later) != 0 {
		t.Fatalf("audit from later: %+v", later)
	}

	// Another instance holds the lease: nothing happens.
	clk.Advance(2 * 24 * time.Hour)
	if err := r.rdb.Set(ctx, DefaultPrefix+"lease:retention", "other", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := ret.RunOnce(ctx); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("with lease held: %v", err)
	}
	r.rdb.Del(ctx, DefaultPrefix+"lease:retention")
	// Number 15550000001 keeps 1 day: its recording goes; the 30-day number stays.
	n, err := ret.RunOnce(ctx)
	if err != nil || n != 1 {
		t.Fatalf("retention removed %d: %v", n, err)
	}
	if _, _, err := r.store.Get(ctx, "15550000001/2026/11/29/wacid.SHORT/recording.ogg"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("expired object still there: %v", err)
	}
	if calls, _ := r.arch.List(ctx, "sup-1", "15550000001", time.Time{}, time.Time{}, 0); len(calls) != 0 {
		t.Fatalf("expired call still listed: %+v", calls)
	}
	if v := testutil.ToFloat64(ret.m.deletions.WithLabelValues("recording", "ok")); v != 1 {
		t.Fatalf("deletions %v", v)
	}
	clk.Advance(29 * 24 * time.Hour)
	if n, err := ret.RunOnce(ctx); err != nil || n != 2 {
		t.Fatalf("second pass removed %d: %v", n, err)
	}
	if objs, _ := r.store.List(ctx, ""); len(objs) != 0 {
		t.Fatalf("left: %+v", objs)
	}
	if keys, _ := r.rdb.Keys(ctx, DefaultPrefix+"call:*").Result(); len(keys) != 0 {
		t.Fatalf("index left: %v", keys)
	}
}

func TestCallRecorder(t *testing.T) {
	r := newRig(t, clock.NewManual(t0), nil)
	f, err := os.Open("../testdata/audio/caller-440.ogg")
	if err != nil {
		t.Fatal(err)
	}
	pkts, err := oggopus.ReadPackets(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	rec, err := r.arch.StartCall("15550000002", "wacid.OWN", t0, 7)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ { // user: 1 s of tone, a 1 s gap, 1 s of tone
		ts := uint32(i * 960)
		if i >= 25 {
			ts += 48000
		}
		if err := rec.User.WritePacket(pkts[i], ts); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 10; i++ { // agent: 200 ms then silence
		_ = rec.Business.WritePacket(pkts[i], uint32(5000+i*960))
	}
	es, err := rec.Finish(context.Background(), 3*time.Second)
	if err != nil || len(es) != 2 {
		t.Fatalf("finish: %v %+v", err, es)
	}
	for _, e := range es {
		b := r.stored(t, e.Key)
		got, err := oggopus.ReadPackets(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		var samples uint32
		for _, p := range got {
			s, _ := samplesOf(p)
			samples += s
		}
		if samples != 3*48000 || e.ExpiresAt.Sub(e.StoredAt) != 7*24*time.Hour {
			t.Fatalf("%v: %d samples (want 3 s), entry %+v", e.Kind, samples, e)
		}
	}
	if want := "15550000002/2026/11/29/wacid.OWN/user_audio.ogg"; es[0].Key != want {
		t.Fatalf("key %s, want %s", es[0].Key, want)
	}
	if _, err := rec.Finish(context.Background(), time.Second); err == nil {
		t.Fatal("second finish accepted")
	}
}

// A signed link from the archive serves the bytes and is audited as a download.
func TestLinkAudited(t *testing.T) {
	clk := clock.NewManual(t0)
	srv := redistest.Start(t)
	rdb := srv.Client()
	mux := http.NewServeMux()
	hs := httptest.NewServer(mux)
	defer hs.Close()
	signer, err := storage.NewLinkSigner(bytes.Repeat([]byte("s"), 32), hs.URL+"/media", clk)
	if err != nil {
		t.Fatal(err)
	}
	store, err := storage.NewLocal(storage.LocalConfig{Dir: t.TempDir(), Links: signer})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/media/", http.StripPrefix("/media", storage.LinkHandler(store, signer)))
	arch, err := NewArchive(store, rdb, ArchiveConfig{Clock: clk, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := arch.StartCall("15550000003", "wacid.LINK", t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Finish(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	u, err := arch.Link(context.Background(), "sup-9", "wacid.LINK", KindUserAudio, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.HasPrefix(b, []byte("OggS")) {
		t.Fatalf("link: %d %q", resp.StatusCode, b[:min(len(b), 8)])
	}
	log, _ := arch.Audit().Read(context.Background(), AuditQuery{CallID: "wacid.LINK"})
	if len(log) != 1 || log[0].Who != "sup-9" || log[0].Action != ActionDownload || log[0].Kind != KindUserAudio {
		t.Fatalf("audit %+v", log)
	}
}
