package recording

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultPrefix keeps every recording key in one Redis Cluster slot, so the
// index is updated in MULTI transactions.
const DefaultPrefix = "{callgw:rec}:"

// Entry is the index record of one object of a call.
type Entry struct {
	CallID   string `json:"call_id"`
	Number   string `json:"number"`
	Kind     Kind   `json:"kind"`
	Status   Status `json:"status"`
	Key      string `json:"key,omitempty"` // object key in the store, once stored
	Size     int64  `json:"size,omitempty"`
	SHA256   string `json:"sha256,omitempty"` // base64
	MimeType string `json:"mime_type,omitempty"`
	MediaID  string `json:"media_id,omitempty"`
	URL      string `json:"-"` // Meta's last download URL, kept out of API answers
	// URLExpiresAt is when URL stops working (about 5 minutes after issue).
	URLExpiresAt time.Time `json:"-"`

	NoticeAt      time.Time `json:"notice_at"`
	MetaExpiresAt time.Time `json:"meta_expires_at,omitzero"` // Meta deletes the media then
	StoredAt      time.Time `json:"stored_at,omitzero"`
	ExpiresAt     time.Time `json:"expires_at,omitzero"` // our retention; zero = kept
	Attempts      int       `json:"attempts,omitempty"`
	LastError     string    `json:"last_error,omitempty"`
	NextAttempt   time.Time `json:"next_attempt,omitzero"`
}

// stored form keeps the URL, which Entry's JSON hides.
type storedEntry struct {
	Entry
	MetaURL      string    `json:"meta_url,omitempty"`
	URLExpiresAt time.Time `json:"meta_url_expires_at,omitzero"`
}

// index is the Redis side: a hash per call (field = kind), a pending zset
// (score = next attempt), an expiry zset (score = expires_at), a zset per
// number (score = notice time) for listing.
type index struct {
	rdb    redis.UniversalClient
	prefix string
}

func (x index) callKey(id string) string    { return x.prefix + "call:" + id }
func (x index) numKey(n string) string      { return x.prefix + "num:" + n }
func (x index) pendingKey() string          { return x.prefix + "pending" }
func (x index) expiryKey() string           { return x.prefix + "expiry" }
func member(callID string, k Kind) string   { return callID + "|" + k.String() }
func (x index) claimKey(m string) string    { return x.prefix + "claim:" + m }
func (x index) leaseKey(name string) string { return x.prefix + "lease:" + name }

func splitMember(m string) (string, Kind, error) {
	i := strings.LastIndexByte(m, '|')
	if i < 0 {
		return "", KindUnknown, fmt.Errorf("recording: index member %q", m)
	}
	k, err := ParseKind(m[i+1:])
	return m[:i], k, err
}

func (x index) get(ctx context.Context, callID string, k Kind) (Entry, error) {
	s, err := x.rdb.HGet(ctx, x.callKey(callID), k.String()).Result()
	if errors.Is(err, redis.Nil) {
		return Entry{}, fmt.Errorf("%w: %s %v", ErrNotFound, callID, k)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("recording: index get: %w", err)
	}
	return decodeEntry(s)
}

func decodeEntry(s string) (Entry, error) {
	var se storedEntry
	if err := json.Unmarshal([]byte(s), &se); err != nil {
		return Entry{}, fmt.Errorf("recording: index entry: %w", err)
	}
	se.Entry.URL, se.Entry.URLExpiresAt = se.MetaURL, se.URLExpiresAt
	return se.Entry, nil
}

func (x index) all(ctx context.Context, callID string) ([]Entry, error) {
	m, err := x.rdb.HGetAll(ctx, x.callKey(callID)).Result()
	if err != nil {
		return nil, fmt.Errorf("recording: index get: %w", err)
	}
	out := make([]Entry, 0, len(m))
	for _, k := range kindNames[1:] {
		if s, ok := m[k]; ok {
			e, err := decodeEntry(s)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// put writes e and keeps the pending and expiry sets in step with its status.
func (x index) put(ctx context.Context, e Entry) error {
	b, err := json.Marshal(storedEntry{Entry: e, MetaURL: e.URL, URLExpiresAt: e.URLExpiresAt})
	if err != nil {
		return fmt.Errorf("recording: index entry: %w", err)
	}
	m := member(e.CallID, e.Kind)
	_, err = x.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, x.callKey(e.CallID), e.Kind.String(), b)
		p.ZAdd(ctx, x.numKey(e.Number), redis.Z{Score: float64(e.NoticeAt.UnixMilli()), Member: e.CallID})
		if e.Status == StatusPending {
			p.ZAdd(ctx, x.pendingKey(), redis.Z{Score: float64(e.NextAttempt.UnixMilli()), Member: m})
		} else {
			p.ZRem(ctx, x.pendingKey(), m)
		}
		if !e.ExpiresAt.IsZero() {
			p.ZAdd(ctx, x.expiryKey(), redis.Z{Score: float64(e.ExpiresAt.UnixMilli()), Member: m})
		} else {
			p.ZRem(ctx, x.expiryKey(), m)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording: index put: %w", err)
	}
	return nil
}

// remove drops an entry (and the call from its number's list when it was the last).
func (x index) remove(ctx context.Context, e Entry) error {
	m := member(e.CallID, e.Kind)
	_, err := x.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, x.callKey(e.CallID), e.Kind.String())
		p.ZRem(ctx, x.pendingKey(), m)
		p.ZRem(ctx, x.expiryKey(), m)
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording: index remove: %w", err)
	}
	n, err := x.rdb.HLen(ctx, x.callKey(e.CallID)).Result()
	if err == nil && n == 0 {
		err = x.rdb.ZRem(ctx, x.numKey(e.Number), e.CallID).Err()
	}
	if err != nil {
		return fmt.Errorf("recording: index remove: %w", err)
	}
	return nil
}

// due returns up to n members of set whose score is at or before t.
func (x index) due(ctx context.Context, set string, t time.Time, n int64) ([]string, error) {
	ms, err := x.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: set, ByScore: true, Start: "-inf",
		Stop: strconv.FormatInt(t.UnixMilli(), 10), Count: n}).Result()
	if err != nil {
		return nil, fmt.Errorf("recording: index due: %w", err)
	}
	return ms, nil
}

// claim takes a short per-object lock so two instances do not download the
// same media at once; release frees it if still ours.
func (x index) claim(ctx context.Context, m, token string, ttl time.Duration) (bool, error) {
	ok, err := x.rdb.SetNX(ctx, x.claimKey(m), token, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("recording: claim: %w", err)
	}
	return ok, nil
}

var releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

func (x index) release(ctx context.Context, key, token string) {
	_ = releaseScript.Run(ctx, x.rdb, []string{key}, token).Err()
}
