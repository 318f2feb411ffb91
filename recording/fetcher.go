package recording

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/internal/clock"
	"github.com/callgw/callgw/storage"
)

// RetentionFunc gives the days a number's recordings are kept; 0 keeps them.
type RetentionFunc func(number string) int

// PerNumber returns a RetentionFunc: days[number], else defaultDays.
func PerNumber(defaultDays int, days map[string]int) RetentionFunc {
	cp := make(map[string]int, len(days))
	for k, v := range days {
		cp[k] = v
	}
	return func(n string) int {
		if d, ok := cp[n]; ok {
			return d
		}
		return defaultDays
	}
}

// FetcherConfig configures a Fetcher. Zero durations take the defaults.
type FetcherConfig struct {
	// GraphURL is the Graph API base with version, e.g.
	// "https://graph.facebook.com/v23.0"; fresh URLs come from GET GraphURL/<MEDIA_ID>. Required.
	GraphURL string
	// Token is the bearer token for Graph and media downloads. Required.
	Token string
	// TokenFor, if set, gives the token of a business number's media (each
	// number may have its own); "" falls back to Token.
	TokenFor func(number string) string
	// Client does the HTTP; default a client with a 5-minute timeout.
	Client *http.Client
	// TempDir holds downloads while they are verified (default os.TempDir()).
	TempDir string
	// MaxSize refuses larger media (default 1 GiB).
	MaxSize int64
	// LinkLife is how long a media URL works (default 5 min, Meta's figure).
	LinkLife time.Duration
	// MetaRetention is how long Meta keeps the media after the webhook
	// (default 7 days); pending downloads are given up after it.
	MetaRetention time.Duration
	// Tries is the number of download attempts in one pass (default 4),
	// waiting Backoff (default 1 s, doubling, at most MaxBackoff 30 s) between them.
	Tries      int
	Backoff    time.Duration
	MaxBackoff time.Duration
	// RetryEvery is the background retry interval after a failed pass
	// (default 5 min, doubling per failure, at most 6 h).
	RetryEvery time.Duration
	// Poll is how often Run looks for due retries without being woken (default 30 s).
	Poll time.Duration
	// Retention gives our own retention per number; nil keeps everything.
	Retention RetentionFunc
	// Prefix of the Redis keys (default DefaultPrefix).
	Prefix string
	// OnResult, if set, is called after each download pass with the entry
	// as recorded (stored, pending with its error, or failed), e.g. to tell
	// supervisor pages that a recording is ready.
	OnResult func(Entry)
	// Owner names this instance in download claims (default random).
	Owner      string
	Clock      clock.Clock
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (c *FetcherConfig) defaults() error {
	if c.GraphURL == "" || c.Token == "" {
		return fmt.Errorf("%w: fetcher needs GraphURL and Token", ErrBadConfig)
	}
	c.GraphURL = strings.TrimSuffix(c.GraphURL, "/")
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.LinkLife, 5*time.Minute)
	def(&c.MetaRetention, 7*24*time.Hour)
	def(&c.Backoff, time.Second)
	def(&c.MaxBackoff, 30*time.Second)
	def(&c.RetryEvery, 5*time.Minute)
	def(&c.Poll, 30*time.Second)
	if c.Client == nil {
		c.Client = &http.Client{Timeout: 5 * time.Minute}
	}
	if c.TempDir == "" {
		c.TempDir = os.TempDir()
	}
	if c.MaxSize <= 0 {
		c.MaxSize = 1 << 30
	}
	if c.Tries <= 0 {
		c.Tries = 4
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Owner == "" {
		c.Owner = randomToken()
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func randomToken() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Fetcher copies Meta's recordings and transcripts into our store: at once
// when the webhook arrives, then retried in the background until Meta's
// retention ends. Safe for concurrent use; Run is its one background loop.
type Fetcher struct {
	cfg   FetcherConfig
	store storage.Store
	idx   index
	m     *fetchMetrics
	wake  chan struct{}

	mu      sync.Mutex
	running bool
}

// NewFetcher returns a Fetcher storing into store and indexing in rdb.
func NewFetcher(store storage.Store, rdb redis.UniversalClient, cfg FetcherConfig) (*Fetcher, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if store == nil || rdb == nil {
		return nil, fmt.Errorf("%w: fetcher needs a store and redis", ErrBadConfig)
	}
	return &Fetcher{cfg: cfg, store: store, idx: index{rdb: rdb, prefix: cfg.Prefix},
		m: newFetchMetrics(cfg.Registerer), wake: make(chan struct{}, 1)}, nil
}

// Enqueue records a webhook's notice as a pending download and wakes Run,
// which downloads it at once. A notice for media already stored with the
// same sha256 is a duplicate webhook and changes nothing. Call it from the
// webhook handler; it does no HTTP.
func (f *Fetcher) Enqueue(ctx context.Context, n Notice) error {
	if err := n.Validate(); err != nil {
		return err
	}
	now := f.cfg.Clock.Now()
	if old, err := f.idx.get(ctx, n.CallID, n.Kind); err == nil {
		if old.Status == StatusStored && (n.SHA256 == "" || old.SHA256 == n.SHA256) {
			f.m.downloads.WithLabelValues(n.Kind.String(), "duplicate").Inc()
			return nil
		}
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	issued := n.At
	if issued.After(now) {
		issued = now
	}
	e := Entry{CallID: n.CallID, Number: n.Number, Kind: n.Kind, Status: StatusPending, SHA256: n.SHA256,
		MimeType: n.MimeType, MediaID: n.MediaID, URL: n.URL, URLExpiresAt: issued.Add(f.cfg.LinkLife),
		NoticeAt: n.At, MetaExpiresAt: n.At.Add(f.cfg.MetaRetention), NextAttempt: now}
	if err := f.idx.put(ctx, e); err != nil {
		return err
	}
	f.cfg.Logger.Info("recording: announced", "call", n.CallID, "kind", n.Kind, "media", n.MediaID)
	f.refreshPending(ctx)
	select {
	case f.wake <- struct{}{}:
	default:
	}
	return nil
}

// Fetch enqueues n and downloads it now, returning the resulting entry (for
// callers that want the download inside the request, and for tests).
func (f *Fetcher) Fetch(ctx context.Context, n Notice) (Entry, error) {
	if err := f.Enqueue(ctx, n); err != nil {
		return Entry{}, err
	}
	e, err := f.idx.get(ctx, n.CallID, n.Kind)
	if err != nil {
		return Entry{}, err
	}
	if e.Status == StatusStored {
		return e, nil
	}
	return f.process(ctx, e)
}

// Run downloads pending media as it is enqueued and retries failed ones
// when due, until ctx ends. One Run per Fetcher.
func (f *Fetcher) Run(ctx context.Context) error {
	f.mu.Lock()
	if f.running {
		f.mu.Unlock()
		return fmt.Errorf("%w: fetcher already running", ErrBadConfig)
	}
	f.running = true
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.running = false; f.mu.Unlock() }()
	for {
		if _, err := f.RetryDue(ctx); err != nil && ctx.Err() == nil {
			f.cfg.Logger.Warn("recording: retry pass", "err", err)
		}
		tick := make(chan struct{})
		t := f.cfg.Clock.AfterFunc(f.cfg.Poll, func() { close(tick) })
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-f.wake:
		case <-tick:
		}
		t.Stop()
	}
}

// RetryDue processes the pending downloads whose time has come (at most 32)
// and returns how many were stored.
func (f *Fetcher) RetryDue(ctx context.Context) (int, error) {
	defer f.refreshPending(ctx)
	ms, err := f.idx.due(ctx, f.idx.pendingKey(), f.cfg.Clock.Now(), 32)
	if err != nil {
		return 0, err
	}
	stored := 0
	for _, m := range ms {
		if ctx.Err() != nil {
			return stored, ctx.Err()
		}
		callID, kind, err := splitMember(m)
		if err != nil {
			_ = f.idx.rdb.ZRem(ctx, f.idx.pendingKey(), m).Err()
			continue
		}
		e, err := f.idx.get(ctx, callID, kind)
		if errors.Is(err, ErrNotFound) {
			_ = f.idx.rdb.ZRem(ctx, f.idx.pendingKey(), m).Err()
			continue
		}
		if err != nil {
			return stored, err
		}
		if e.Status != StatusPending {
			continue
		}
		if e, err = f.process(ctx, e); err == nil && e.Status == StatusStored {
			stored++
		}
	}
	return stored, nil
}

// Pending counts downloads not stored yet.
func (f *Fetcher) Pending(ctx context.Context) (int64, error) {
	n, err := f.idx.rdb.ZCard(ctx, f.idx.pendingKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("recording: pending: %w", err)
	}
	return n, nil
}

func (f *Fetcher) refreshPending(ctx context.Context) {
	if n, err := f.Pending(ctx); err == nil {
		f.m.pending.Set(float64(n))
	}
}

var errClaimed = errors.New("recording: download in progress elsewhere")

// process makes one pass of download attempts for e and records the outcome.
func (f *Fetcher) process(ctx context.Context, e Entry) (Entry, error) {
	m := member(e.CallID, e.Kind)
	token := f.cfg.Owner + ":" + randomToken()
	ok, err := f.idx.claim(ctx, m, token, 15*time.Minute)
	if err != nil {
		return e, err
	}
	if !ok {
		return e, errClaimed
	}
	defer f.idx.release(context.WithoutCancel(ctx), f.idx.claimKey(m), token)

	var lastErr error
	wait := f.cfg.Backoff
	for try := 0; try < f.cfg.Tries; try++ {
		if try > 0 {
			if err := f.sleep(ctx, wait); err != nil {
				lastErr = err
				break
			}
			wait = min(wait*2, f.cfg.MaxBackoff)
		}
		if e.URL == "" || !f.cfg.Clock.Now().Before(e.URLExpiresAt) {
			if lastErr = f.refreshURL(ctx, &e); lastErr != nil {
				if errors.Is(lastErr, ErrMediaGone) {
					break
				}
				continue
			}
		}
		key, size, err := f.download(ctx, e)
		if err == nil {
			now := f.cfg.Clock.Now()
			e.Status, e.Key, e.Size, e.StoredAt = StatusStored, key, size, now
			e.LastError, e.NextAttempt, e.URL = "", time.Time{}, ""
			e.Attempts++
			if f.cfg.Retention != nil {
				if d := f.cfg.Retention(e.Number); d > 0 {
					e.ExpiresAt = now.Add(time.Duration(d) * 24 * time.Hour)
				}
			}
			if err := f.idx.put(ctx, e); err != nil {
				// Stored but not indexed: the retry will store it again (same key) and index it.
				return e, err
			}
			f.m.downloads.WithLabelValues(e.Kind.String(), "ok").Inc()
			f.m.bytes.Add(float64(size))
			f.cfg.Logger.Info("recording: stored", "call", e.CallID, "kind", e.Kind, "key", key, "bytes", size)
			f.notify(e)
			return e, nil
		}
		lastErr = err
		f.m.downloads.WithLabelValues(e.Kind.String(), resultOf(err)).Inc()
		f.cfg.Logger.Warn("recording: download failed", "call", e.CallID, "kind", e.Kind, "try", try+1, "err", err)
		if errors.Is(err, ErrLinkExpired) {
			e.URL = ""
		}
		if errors.Is(err, ErrBadSHA256) || errors.Is(err, ErrTooLarge) || ctx.Err() != nil {
			break
		}
	}
	if lastErr == nil {
		lastErr = errors.New("recording: no download attempt made")
	}
	return f.failed(ctx, e, lastErr)
}

func (f *Fetcher) failed(ctx context.Context, e Entry, cause error) (Entry, error) {
	now := f.cfg.Clock.Now()
	e.Attempts++
	e.LastError = cause.Error()
	backoff := f.cfg.RetryEvery
	for i := 1; i < e.Attempts && backoff < 6*time.Hour; i++ {
		backoff *= 2
	}
	backoff = min(backoff, 6*time.Hour)
	if errors.Is(cause, ErrMediaGone) || !now.Before(e.MetaExpiresAt) {
		e.Status, e.NextAttempt = StatusFailed, time.Time{}
		if f.cfg.Retention != nil {
			if d := f.cfg.Retention(e.Number); d > 0 {
				e.ExpiresAt = now.Add(time.Duration(d) * 24 * time.Hour)
			}
		}
		f.m.downloads.WithLabelValues(e.Kind.String(), "given_up").Inc()
		f.cfg.Logger.Error("recording: given up", "call", e.CallID, "kind", e.Kind, "attempts", e.Attempts, "err", cause)
	} else {
		// Retry later, with one last try just before Meta deletes the media.
		e.NextAttempt = now.Add(backoff)
		if last := e.MetaExpiresAt.Add(-time.Minute); e.NextAttempt.After(last) {
			e.NextAttempt = last
			if !last.After(now) {
				e.NextAttempt = e.MetaExpiresAt
			}
		}
	}
	// Recorded even when ctx ended (shutdown), so the retry job finds it.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := f.idx.put(pctx, e); err != nil {
		return e, errors.Join(cause, err)
	}
	f.notify(e)
	return e, cause
}

func (f *Fetcher) notify(e Entry) {
	if f.cfg.OnResult != nil {
		f.cfg.OnResult(e)
	}
}

func resultOf(err error) string {
	switch {
	case errors.Is(err, ErrBadSHA256):
		return "bad_sha"
	case errors.Is(err, ErrLinkExpired):
		return "link_expired"
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrMediaGone):
		return "gone"
	}
	return "error"
}

func (f *Fetcher) sleep(ctx context.Context, d time.Duration) error {
	done := make(chan struct{})
	t := f.cfg.Clock.AfterFunc(d, func() { close(done) })
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-done:
		return nil
	}
}

type mediaInfo struct {
	URL      string `json:"url"`
	MimeType string `json:"mime_type"`
	SHA256   string `json:"sha256"`
	FileSize int64  `json:"file_size"`
	ID       string `json:"id"`
}

// refreshURL asks Graph for a fresh download URL: GET /<MEDIA_ID>.
func (f *Fetcher) refreshURL(ctx context.Context, e *Entry) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.cfg.GraphURL+"/"+e.MediaID, nil)
	if err != nil {
		return fmt.Errorf("recording: media info: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+f.token(e.Number))
	resp, err := f.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("recording: media info: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return fmt.Errorf("%w: media %s: HTTP %d", ErrMediaGone, e.MediaID, resp.StatusCode)
	case resp.StatusCode == http.StatusBadRequest && graphCode(body) == 100:
		return fmt.Errorf("%w: media %s: %s", ErrMediaGone, e.MediaID, trim(body))
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("recording: media info %s: HTTP %d: %s", e.MediaID, resp.StatusCode, trim(body))
	}
	var info mediaInfo
	if err := json.Unmarshal(body, &info); err != nil || info.URL == "" {
		return fmt.Errorf("recording: media info %s: bad answer: %s", e.MediaID, trim(body))
	}
	if e.SHA256 == "" {
		e.SHA256 = info.SHA256
	} else if info.SHA256 != "" && info.SHA256 != e.SHA256 {
		f.cfg.Logger.Warn("recording: media info sha256 differs from the webhook's; keeping the webhook's", "call", e.CallID, "kind", e.Kind)
	}
	if e.MimeType == "" {
		e.MimeType = info.MimeType
	}
	e.URL, e.URLExpiresAt = info.URL, f.cfg.Clock.Now().Add(f.cfg.LinkLife)
	return nil
}

func (f *Fetcher) token(number string) string {
	if f.cfg.TokenFor != nil {
		if t := f.cfg.TokenFor(number); t != "" {
			return t
		}
	}
	return f.cfg.Token
}

func graphCode(body []byte) int {
	var g struct {
		Error struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &g)
	return g.Error.Code
}

func trim(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return strings.TrimSpace(string(b))
}

// download fetches e.URL into a temp file, verifies the sha256 and puts the
// bytes in the store; it returns the object key and size.
func (f *Fetcher) download(ctx context.Context, e Entry) (string, int64, error) {
	if e.SHA256 == "" {
		return "", 0, fmt.Errorf("%w: no sha256 to verify against", ErrBadSHA256)
	}
	key, err := ObjectKey(e.Number, e.NoticeAt, e.CallID, e.Kind)
	if err != nil {
		return "", 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL, nil)
	if err != nil {
		return "", 0, fmt.Errorf("recording: download: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+f.token(e.Number))
	resp, err := f.cfg.Client.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("recording: download: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusGone:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return "", 0, fmt.Errorf("%w: HTTP %d: %s", ErrLinkExpired, resp.StatusCode, trim(b))
	default:
		return "", 0, fmt.Errorf("recording: download: HTTP %d", resp.StatusCode)
	}
	tmp, err := os.CreateTemp(f.cfg.TempDir, "callgw-media-*")
	if err != nil {
		return "", 0, fmt.Errorf("recording: temp file: %w", err)
	}
	defer func() { tmp.Close(); os.Remove(tmp.Name()) }()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(resp.Body, f.cfg.MaxSize+1))
	if err != nil {
		return "", 0, fmt.Errorf("recording: download: %w", err)
	}
	if n > f.cfg.MaxSize {
		return "", 0, fmt.Errorf("%w: over %d bytes", ErrTooLarge, f.cfg.MaxSize)
	}
	if got := base64.StdEncoding.EncodeToString(h.Sum(nil)); got != e.SHA256 {
		return "", 0, fmt.Errorf("%w: got %s, Meta said %s", ErrBadSHA256, got, e.SHA256)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return "", 0, fmt.Errorf("recording: temp file: %w", err)
	}
	ct := e.MimeType
	if ct == "" {
		ct = e.Kind.ContentType()
	}
	meta := storage.Meta{ContentType: ct, User: map[string]string{"sha256": e.SHA256, "call-id": e.CallID, "kind": e.Kind.String()}}
	if err := f.store.Put(ctx, key, tmp, n, meta); err != nil {
		return "", 0, fmt.Errorf("recording: store: %w", err)
	}
	return key, n, nil
}
