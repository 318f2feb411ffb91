package recording

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/internal/clock"
	"github.com/callgw/callgw/recording/opusfile"
	"github.com/callgw/callgw/storage"
)

// ArchiveConfig configures supervisor access to stored recordings.
type ArchiveConfig struct {
	Prefix string // Redis key prefix (default DefaultPrefix)
	Clock  clock.Clock
	// AuditMaxLen caps the audit stream (default 1,000,000 entries).
	AuditMaxLen int64
	// TempDir holds our own recordings while a call runs (default os.TempDir()).
	TempDir string
}

// Archive is the read side for supervisors (every access audited) and the
// write side for our own recordings.
type Archive struct {
	store storage.Store
	idx   index
	audit *Audit
	clk   clock.Clock
	tmp   string
}

// NewArchive returns the archive over store and the Redis index.
func NewArchive(store storage.Store, rdb redis.UniversalClient, cfg ArchiveConfig) (*Archive, error) {
	if store == nil || rdb == nil {
		return nil, fmt.Errorf("%w: archive needs a store and redis", ErrBadConfig)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.TempDir == "" {
		cfg.TempDir = os.TempDir()
	}
	return &Archive{store: store, idx: index{rdb: rdb, prefix: cfg.Prefix},
		audit: NewAudit(rdb, cfg.Prefix, cfg.Clock, cfg.AuditMaxLen), clk: cfg.Clock, tmp: cfg.TempDir}, nil
}

// Audit is the archive's access log.
func (a *Archive) Audit() *Audit { return a.audit }

// Call is one call's recordings and transcripts.
type Call struct {
	CallID  string    `json:"call_id"`
	Number  string    `json:"number"`
	At      time.Time `json:"at"` // when the first object was announced or recorded
	Entries []Entry   `json:"entries"`
}

// List returns a number's calls with recordings announced in [from, to]
// (zero = open), newest first, at most limit (default 50, max 1000). Audited.
func (a *Archive) List(ctx context.Context, who, number string, from, to time.Time, limit int) ([]Call, error) {
	if who == "" {
		return nil, ErrNoActor
	}
	if err := validNumber(number); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	lo, hi := "-inf", "+inf"
	if !from.IsZero() {
		lo = strconv.FormatInt(from.UnixMilli(), 10)
	}
	if !to.IsZero() {
		hi = strconv.FormatInt(to.UnixMilli(), 10)
	}
	if err := a.audit.Record(ctx, Access{Who: who, Action: ActionList, Number: number,
		Detail: fmt.Sprintf("from=%s to=%s limit=%d", lo, hi, limit)}); err != nil {
		return nil, err
	}
	zs, err := a.idx.rdb.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{Key: a.idx.numKey(number), ByScore: true,
		Start: hi, Stop: lo, Rev: true, Count: int64(limit)}).Result() // with REV the range runs max to min
	if err != nil {
		return nil, fmt.Errorf("recording: list: %w", err)
	}
	out := make([]Call, 0, len(zs))
	for _, z := range zs {
		id, _ := z.Member.(string)
		es, err := a.idx.all(ctx, id)
		if err != nil {
			return nil, err
		}
		if len(es) == 0 {
			continue
		}
		out = append(out, Call{CallID: id, Number: number, At: time.UnixMilli(int64(z.Score)).UTC(), Entries: es})
	}
	return out, nil
}

// Call returns one call's entries. Audited as a list.
func (a *Archive) Call(ctx context.Context, who, callID string) ([]Entry, error) {
	if who == "" {
		return nil, ErrNoActor
	}
	es, err := a.idx.all(ctx, callID)
	if err != nil {
		return nil, err
	}
	if len(es) == 0 {
		return nil, fmt.Errorf("%w: call %s", ErrNotFound, callID)
	}
	if err := a.audit.Record(ctx, Access{Who: who, Action: ActionList, Number: es[0].Number, CallID: callID}); err != nil {
		return nil, err
	}
	return es, nil
}

func (a *Archive) stored(ctx context.Context, callID string, kind Kind) (Entry, error) {
	e, err := a.idx.get(ctx, callID, kind)
	if err != nil {
		return Entry{}, err
	}
	if e.Status != StatusStored || e.Key == "" {
		return Entry{}, fmt.Errorf("%w: %s %v is %v", ErrNotFound, callID, kind, e.Status)
	}
	return e, nil
}

// Open returns the object's bytes for action ActionPlay or ActionDownload.
// The access is audited before any byte is read; the caller closes the reader.
func (a *Archive) Open(ctx context.Context, who, callID string, kind Kind, action Action) (io.ReadCloser, Entry, error) {
	if who == "" {
		return nil, Entry{}, ErrNoActor
	}
	if action != ActionPlay && action != ActionDownload && action != ActionView {
		return nil, Entry{}, fmt.Errorf("recording: open with action %v", action)
	}
	e, err := a.stored(ctx, callID, kind)
	if err != nil {
		return nil, Entry{}, err
	}
	if err := a.audit.Record(ctx, Access{Who: who, Action: action, Number: e.Number, CallID: callID, Kind: kind}); err != nil {
		return nil, Entry{}, err
	}
	rc, _, err := a.store.Get(ctx, e.Key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, Entry{}, fmt.Errorf("%w: object %s", ErrNotFound, e.Key)
	}
	if err != nil {
		return nil, Entry{}, err
	}
	return rc, e, nil
}

// Link hands out a time-limited URL to the object (the store must implement
// storage.URLSigner). Audited as a download.
func (a *Archive) Link(ctx context.Context, who, callID string, kind Kind, ttl time.Duration) (string, error) {
	if who == "" {
		return "", ErrNoActor
	}
	us, ok := a.store.(storage.URLSigner)
	if !ok {
		return "", fmt.Errorf("%w: store cannot sign links", ErrBadConfig)
	}
	e, err := a.stored(ctx, callID, kind)
	if err != nil {
		return "", err
	}
	u, err := us.SignedURL(ctx, e.Key, ttl)
	if err != nil {
		return "", err
	}
	// Audited before the link leaves: no audit record, no link.
	if err := a.audit.Record(ctx, Access{Who: who, Action: ActionDownload, Number: e.Number, CallID: callID, Kind: kind,
		Detail: "link ttl=" + ttl.String()}); err != nil {
		return "", err
	}
	return u, nil
}

// Transcript returns a call's parsed transcript and its speaker turns. Audited as a view.
func (a *Archive) Transcript(ctx context.Context, who, callID string) (Transcript, []Turn, error) {
	rc, _, err := a.Open(ctx, who, callID, KindTranscript, ActionView)
	if err != nil {
		return Transcript{}, nil, err
	}
	defer rc.Close()
	t, err := ParseTranscript(rc)
	if err != nil {
		return Transcript{}, nil, err
	}
	return t, t.Turns(), nil
}

// CallRecorder records one call ourselves: two Ogg Opus files, one per
// direction, written to temp files while the call runs (the packet path
// never waits on the store) and stored and indexed by Finish.
type CallRecorder struct {
	// User receives the WhatsApp user's Opus packets, Business the agent's.
	User, Business *opusfile.Writer

	a      *Archive
	number string
	callID string
	start  time.Time
	days   int
	files  [2]*os.File
	done   bool
}

// StartCall opens a CallRecorder for a call that started at start, kept for
// retentionDays (0 = kept).
func (a *Archive) StartCall(number, callID string, start time.Time, retentionDays int) (*CallRecorder, error) {
	for _, k := range []Kind{KindUserAudio, KindBusinessAudio} {
		if _, err := ObjectKey(number, start, callID, k); err != nil {
			return nil, err
		}
	}
	if err := validCallID(callID); err != nil {
		return nil, err
	}
	c := &CallRecorder{a: a, number: number, callID: callID, start: start, days: retentionDays}
	for i := range c.files {
		f, err := os.CreateTemp(a.tmp, "callgw-rec-*.ogg")
		if err != nil {
			c.Abort()
			return nil, fmt.Errorf("recording: temp file: %w", err)
		}
		c.files[i] = f
		w, err := opusfile.NewWriter(f, opusfile.Config{Serial: uint32(start.UnixNano()) + uint32(i)})
		if err != nil {
			c.Abort()
			return nil, err
		}
		if i == 0 {
			c.User = w
		} else {
			c.Business = w
		}
	}
	return c, nil
}

// Finish pads both files to the call's duration, stores and indexes them.
func (c *CallRecorder) Finish(ctx context.Context, callDuration time.Duration) ([]Entry, error) {
	if c.done {
		return nil, fmt.Errorf("recording: call recorder already finished")
	}
	defer c.Abort()
	var out []Entry
	for i, w := range []*opusfile.Writer{c.User, c.Business} {
		kind := []Kind{KindUserAudio, KindBusinessAudio}[i]
		if err := w.PadTo(callDuration); err != nil {
			return out, err
		}
		if err := w.Close(); err != nil {
			return out, err
		}
		e, err := c.a.saveFile(ctx, c.files[i], c.number, c.callID, c.start, kind, c.days)
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, nil
}

// Abort drops the temp files without storing anything. Safe to call twice.
func (c *CallRecorder) Abort() {
	c.done = true
	for i, f := range c.files {
		if f != nil {
			f.Close()
			os.Remove(f.Name())
			c.files[i] = nil
		}
	}
}

func (a *Archive) saveFile(ctx context.Context, f *os.File, number, callID string, start time.Time, kind Kind, days int) (Entry, error) {
	key, err := ObjectKey(number, start, callID, kind)
	if err != nil {
		return Entry{}, err
	}
	h := sha256.New()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Entry{}, fmt.Errorf("recording: temp file: %w", err)
	}
	n, err := io.Copy(h, f)
	if err != nil {
		return Entry{}, fmt.Errorf("recording: temp file: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Entry{}, fmt.Errorf("recording: temp file: %w", err)
	}
	sum := base64.StdEncoding.EncodeToString(h.Sum(nil))
	if err := a.store.Put(ctx, key, f, n, storage.Meta{ContentType: kind.ContentType(),
		User: map[string]string{"sha256": sum, "call-id": callID, "kind": kind.String()}}); err != nil {
		return Entry{}, fmt.Errorf("recording: store: %w", err)
	}
	now := a.clk.Now()
	e := Entry{CallID: callID, Number: number, Kind: kind, Status: StatusStored, Key: key, Size: n, SHA256: sum,
		MimeType: kind.ContentType(), NoticeAt: start, StoredAt: now}
	if days > 0 {
		e.ExpiresAt = now.Add(time.Duration(days) * 24 * time.Hour)
	}
	if err := a.idx.put(ctx, e); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// Statuses returns the index entries of calls (call id → entries) for a
// call log: status, sizes, errors, no bytes and no links, so not audited.
// Calls without entries are absent.
func (a *Archive) Statuses(ctx context.Context, callIDs []string) (map[string][]Entry, error) {
	out := map[string][]Entry{}
	if len(callIDs) == 0 {
		return out, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(callIDs))
	_, err := a.idx.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range callIDs {
			cmds[i] = p.HGetAll(ctx, a.idx.callKey(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recording: statuses: %w", err)
	}
	for i, c := range cmds {
		m := c.Val()
		for _, k := range kindNames[1:] {
			s, ok := m[k]
			if !ok {
				continue
			}
			e, err := decodeEntry(s)
			if err != nil {
				return nil, err
			}
			out[callIDs[i]] = append(out[callIDs[i]], e)
		}
	}
	return out, nil
}
