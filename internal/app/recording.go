package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/config"
	"github.com/callgw/callgw/internal/clock"
	"github.com/callgw/callgw/phone"
	"github.com/callgw/callgw/recording"
	"github.com/callgw/callgw/signaling"
	"github.com/callgw/callgw/signaling/api"
	"github.com/callgw/callgw/signaling/cloudapi"
	"github.com/callgw/callgw/storage"
)

// Recordings wires package recording into the gateway: the recording
// policy of each number (config), Meta's recording/transcription objects
// on accept/connect, Meta's webhooks into the Fetcher, our own recording
// of calls (local.go's part, recording_local.go), the retention job, and
// the archive behind the REST API. It implements signaling.Recordings.
type Recordings struct {
	log      *slog.Logger
	clk      clock.Clock
	policies map[string]config.Recording // the environment's, for CALLGW_PHONE_NUMBER_ID
	// current is the configuration in force (CALLGW_CONFIG, re-read on
	// SIGHUP); nil without a file. Its policies win over policies.
	current func() *config.Config
	rdb     redis.UniversalClient

	store    storage.Store
	links    *storage.LinkSigner // local store: links served under /recordings/files/
	archive  *recording.Archive
	fetcher  *recording.Fetcher
	retainer *recording.Retainer

	local localRecorder // our own recordings (recording_local.go)

	pending sync.WaitGroup // call-end work (stores, call metadata) in flight
}

// linkPath is where signed links to a local store's objects are served.
const linkPath = "/recordings/files"

// linkTTL is the life of a link handed out by the API.
const linkTTL = 5 * time.Minute

// callMetaTTL bounds the call metadata kept for access checks beyond any
// retention (it is refreshed when a call's media comes later).
const callMetaTTL = 400 * 24 * time.Hour

// newRecordings builds the recording side, or nil when no number records
// and no store is configured.
func (a *App) newRecordings(graphBase string, tokens map[string]string) (*Recordings, error) {
	policies := map[string]config.Recording{}
	envPolicy, err := a.Cfg.Rec.policy()
	if err != nil {
		return nil, err
	}
	if a.Cfg.PhoneNumberID != "" {
		policies[a.Cfg.PhoneNumberID] = envPolicy
	}
	any := envPolicy.Mode != config.RecordOff
	var current func() *config.Config
	if a.ConfigLoader != nil {
		current = a.ConfigLoader.Current
		for _, n := range current().Numbers {
			any = any || n.Recording.Mode != config.RecordOff
		}
	}
	if !any && a.Cfg.Rec.DataDir == "" && a.Cfg.Rec.S3Endpoint == "" {
		return nil, nil
	}
	r := &Recordings{log: a.Log.With("component", "recording"), clk: clock.Real{}, policies: policies, current: current, rdb: a.Redis}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s3 := a.Cfg.Rec.s3(); s3 != nil {
		st, err := storage.NewS3(ctx, *s3)
		if err != nil {
			return nil, fmt.Errorf("recordings S3 store: %w", err)
		}
		r.store = st
	} else {
		dir := a.Cfg.Rec.DataDir
		if dir == "" {
			dir = filepath.Join(os.TempDir(), "callgw-demo-data")
			r.log.Warn("no CALLGW_DATA_DIR: recordings go to a temporary directory", "dir", dir)
		}
		mac := hmac.New(sha256.New, []byte(a.Cfg.TokenSecret))
		mac.Write([]byte("callgw recording links"))
		r.links, err = storage.NewLinkSigner(mac.Sum(nil), strings.TrimRight(a.Cfg.PublicURL, "/")+linkPath, nil)
		if err != nil {
			return nil, err
		}
		st, err := storage.NewLocal(storage.LocalConfig{Dir: filepath.Join(dir, "recordings"), Links: r.links})
		if err != nil {
			return nil, fmt.Errorf("recordings store: %w", err)
		}
		r.store = st
	}
	r.archive, err = recording.NewArchive(r.store, a.Redis, recording.ArchiveConfig{})
	if err != nil {
		return nil, err
	}
	r.fetcher, err = recording.NewFetcher(r.store, a.Redis, recording.FetcherConfig{
		GraphURL: strings.TrimRight(graphBase, "/") + "/" + a.Cfg.GraphVersion, Token: a.Cfg.AccessToken,
		TokenFor:  func(n string) string { return tokens[n] },
		Retention: func(n string) int { return r.Policy(n).RetentionDays },
		OnResult:  r.fetched, Logger: r.log, Registerer: a.Registry,
	})
	if err != nil {
		return nil, err
	}
	r.retainer, err = recording.NewRetainer(r.store, a.Redis, recording.RetainerConfig{Owner: a.Cfg.InstanceID,
		Logger: r.log, Registerer: a.Registry})
	if err != nil {
		return nil, err
	}
	if err := r.local.init(r, a.Registry); err != nil {
		return nil, err
	}
	return r, nil
}

// Store is where recordings and transcripts are kept.
func (r *Recordings) Store() storage.Store { return r.store }

// Archive is the audited read side.
func (r *Recordings) Archive() *recording.Archive { return r.archive }

// Fetcher downloads Meta's media.
func (r *Recordings) Fetcher() *recording.Fetcher { return r.fetcher }

// Policy is a number's recording policy (off when not configured): the
// configuration in force (a SIGHUP reload applies to calls answered from
// then on), else the environment's for CALLGW_PHONE_NUMBER_ID.
func (r *Recordings) Policy(number string) config.Recording {
	if r.current != nil {
		if c := r.current(); c != nil {
			if n, ok := c.Number(number); ok {
				if _, env := r.policies[number]; n.Recording.Line > 0 || !env {
					return n.Recording
				}
			}
		}
	}
	if p, ok := r.policies[number]; ok {
		return p
	}
	return config.DefaultRecording()
}

// Run downloads Meta's media and enforces retention until ctx ends, then
// waits for the call-end work in flight.
func (r *Recordings) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.fetcher.Run(gctx) })
	g.Go(func() error { return r.retainer.Run(gctx) })
	err := g.Wait()
	r.Wait()
	return err
}

// Wait waits for the call-end work in flight (stores of our own
// recordings, call metadata).
func (r *Recordings) Wait() { r.pending.Wait() }

// MetaOptions implements signaling.Recordings.
func (r *Recordings) MetaOptions(number string, _ phone.User) (rec, tr *cloudapi.MediaOpt) {
	p := r.Policy(number)
	if !p.Mode.Meta() {
		return nil, nil
	}
	if p.Meta.Recording {
		rec = cloudapi.Enabled(p.Meta.Purpose, p.Meta.AnnouncementLanguage)
	}
	if p.Meta.Transcription {
		tr = cloudapi.Enabled(p.Meta.Purpose, p.Meta.AnnouncementLanguage)
	}
	return rec, tr
}

// MediaAvailable implements signaling.Recordings: Meta's webhook becomes a
// pending download (Fetcher.Run downloads it at once). A notice that does
// not parse is logged and acknowledged: a retry would not fix it.
func (r *Recordings) MediaAvailable(ctx context.Context, number string, raw json.RawMessage) error {
	n, err := recording.ParseEvent(number, raw)
	if errors.Is(err, recording.ErrBadNotice) || errors.Is(err, recording.ErrNotRecordingEvent) {
		r.log.Warn("recording webhook refused", "number", number, "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	return r.fetcher.Enqueue(ctx, n)
}

// fetched is the Fetcher's report of a download pass.
func (r *Recordings) fetched(e recording.Entry) {
	switch e.Status {
	case recording.StatusStored:
		r.log.Info("Meta's media stored", "call", e.CallID, "kind", e.Kind, "bytes", e.Size)
	case recording.StatusFailed:
		r.log.Error("Meta's media could not be downloaded: given up", "call", e.CallID, "kind", e.Kind, "err", e.LastError)
	default:
		r.log.Warn("Meta's media download failed: retried", "call", e.CallID, "kind", e.Kind, "attempt", e.Attempts, "err", e.LastError)
	}
}

// Answered implements signaling.Recordings.
func (r *Recordings) Answered(rec call.Record, b signaling.Bridge) {
	r.local.answered(rec, b)
}

// DTMF implements signaling.Recordings.
func (r *Recordings) DTMF(id call.ID, d rune) { r.local.dtmf(id, d) }

// Ending implements signaling.Recordings: our recording is stopped and
// stored (in the background), the call's metadata kept for access checks,
// and the consent obtained returned for the call record.
func (r *Recordings) Ending(rec call.Record) string {
	p := r.Policy(rec.PhoneNumberID)
	if p.Mode == config.RecordOff {
		return ""
	}
	consent := r.local.ending(rec)
	if consent == "" && p.Mode.Meta() {
		consent = ConsentNotice // Meta plays its own notice before it records
	}
	meta := CallMeta{CallID: string(rec.ID), Number: rec.PhoneNumberID, Agent: rec.Agent, Consent: consent}
	r.pending.Add(1)
	go func() {
		defer r.pending.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.putMeta(ctx, meta); err != nil {
			r.log.Warn("recording: call metadata not saved", "call", rec.ID, "err", err)
		}
	}()
	return consent
}

// StopLocal implements signaling.RecordingStopper.
func (r *Recordings) StopLocal(id call.ID, agent string) error {
	return r.local.stop(id, agent)
}

// LocalState implements signaling.RecordingStater.
func (r *Recordings) LocalState(id call.ID) (signaling.RecordingState, bool) {
	return r.local.state(id)
}

// Consent values written on call records (call.Record.RecordingConsent).
const (
	ConsentNotice          = "notice"
	ConsentExplicitGiven   = "explicit_given"
	ConsentExplicitRefused = "explicit_refused"
	ConsentNone            = "none"
)

// CallMeta is what the API needs to judge access to a call's recordings.
type CallMeta struct {
	CallID  string `json:"call_id"`
	Number  string `json:"number"`
	Agent   string `json:"agent,omitempty"`
	Consent string `json:"consent,omitempty"`
}

func (r *Recordings) metaKey(id string) string { return recording.DefaultPrefix + "callmeta:" + id }

func (r *Recordings) putMeta(ctx context.Context, m CallMeta) error {
	b, _ := json.Marshal(m)
	return r.rdb.Set(ctx, r.metaKey(m.CallID), b, callMetaTTL).Err()
}

// CallMeta returns a call's metadata; found is false for a call callgw did
// not see end (e.g. Meta's media for a call of another deployment).
func (r *Recordings) CallMeta(ctx context.Context, id string) (CallMeta, bool, error) {
	s, err := r.rdb.Get(ctx, r.metaKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return CallMeta{}, false, nil
	}
	if err != nil {
		return CallMeta{}, false, err
	}
	var m CallMeta
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return CallMeta{}, false, fmt.Errorf("recording: call metadata: %w", err)
	}
	return m, true, nil
}

// wireRecordings builds the recording side and connects it to call control
// (nothing when no number records and no store is configured).
func (a *App) wireRecordings(graphBase string, numbers []config.Number) error {
	tokens := map[string]string{a.Cfg.PhoneNumberID: a.Cfg.AccessToken}
	for _, n := range numbers {
		tokens[n.PhoneNumberID] = tokenOf(n, a.Cfg.AccessToken)
	}
	r, err := a.newRecordings(graphBase, tokens)
	if err != nil || r == nil {
		return err
	}
	a.Recordings = r
	a.Ctrl.SetRecordings(r)
	r.local.changed = a.Ctrl.RecordingChanged // the agent sees the recording state
	a.API.SetRecordings(r)
	return nil
}

// runRecordings is the recording side's background work (Run), nil without it.
func (a *App) runRecordings(ctx context.Context) func() error {
	if a.Recordings == nil {
		return func() error { return nil }
	}
	return func() error { return a.Recordings.Run(ctx) }
}

// recordingRoutes mounts the signed links of a local store.
func (a *App) recordingRoutes(mux *http.ServeMux) {
	if a.Recordings == nil {
		return
	}
	if h := a.Recordings.linkHandler(); h != nil {
		mux.Handle("GET "+linkPath+"/", h)
	}
}

// linkHandler serves signed links to a local store's objects (nil for S3,
// whose links are presigned).
func (r *Recordings) linkHandler() http.Handler {
	if r.links == nil {
		return nil
	}
	return http.StripPrefix(linkPath, storage.LinkHandler(r.store, r.links))
}

// Numbers implements api.Recordings: the numbers with a recording policy
// (or the numbers served), sorted.
func (r *Recordings) Numbers() []string {
	seen := map[string]bool{}
	for n := range r.policies {
		seen[n] = true
	}
	if r.current != nil {
		if c := r.current(); c != nil {
			for _, n := range c.PhoneNumberIDs() {
				seen[n] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// List implements api.Recordings.
func (r *Recordings) List(ctx context.Context, who, number string, from, to time.Time, limit int) ([]recording.Call, error) {
	return r.archive.List(ctx, who, number, from, to, limit)
}

// Entries implements api.Recordings.
func (r *Recordings) Entries(ctx context.Context, who, callID string) ([]recording.Entry, error) {
	return r.archive.Call(ctx, who, callID)
}

// Open implements api.Recordings.
func (r *Recordings) Open(ctx context.Context, who, callID string, k recording.Kind, act recording.Action) (io.ReadCloser, recording.Entry, error) {
	return r.archive.Open(ctx, who, callID, k, act)
}

// Link implements api.Recordings.
func (r *Recordings) Link(ctx context.Context, who, callID string, k recording.Kind, ttl time.Duration) (string, error) {
	return r.archive.Link(ctx, who, callID, k, ttl)
}

// Transcript implements api.Recordings.
func (r *Recordings) Transcript(ctx context.Context, who, callID string) (recording.Transcript, []recording.Turn, error) {
	return r.archive.Transcript(ctx, who, callID)
}

// Audit implements api.Recordings.
func (r *Recordings) Audit(ctx context.Context, q recording.AuditQuery) ([]recording.Access, error) {
	return r.archive.Audit().Read(ctx, q)
}

// Statuses implements api.Recordings.
func (r *Recordings) Statuses(ctx context.Context, ids []string) (map[string][]recording.Entry, error) {
	return r.archive.Statuses(ctx, ids)
}

// CallAccess implements api.Recordings.
func (r *Recordings) CallAccess(ctx context.Context, callID string) (string, bool, bool, error) {
	m, found, err := r.CallMeta(ctx, callID)
	if err != nil || !found {
		return "", false, found, err
	}
	return m.Agent, r.Policy(m.Number).AgentAccess, true, nil
}

var _ api.Recordings = (*Recordings)(nil)
var _ signaling.Recordings = (*Recordings)(nil)
var _ signaling.RecordingStopper = (*Recordings)(nil)
