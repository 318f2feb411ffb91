package recording

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/internal/clock"
)

// Action is what an access did.
type Action uint8

const (
	ActionUnknown Action = iota
	// ActionList: a listing of a number's or a call's recordings.
	ActionList
	// ActionPlay: audio streamed to a page.
	ActionPlay
	// ActionDownload: a file downloaded, or a link to it handed out.
	ActionDownload
	// ActionView: a transcript shown.
	ActionView
)

var actionNames = [...]string{"unknown", "list", "play", "download", "view"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// ParseAction is the inverse of String.
func ParseAction(s string) (Action, error) {
	for i, n := range actionNames {
		if i > 0 && n == s {
			return Action(i), nil
		}
	}
	return ActionUnknown, fmt.Errorf("recording: action %q", s)
}

func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// Access is one audit record.
type Access struct {
	ID     string    `json:"id"` // stream id, set when read
	At     time.Time `json:"at"`
	Who    string    `json:"who"`
	Action Action    `json:"action"`
	Number string    `json:"number,omitempty"`
	CallID string    `json:"call_id,omitempty"`
	Kind   Kind      `json:"kind,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// Audit is the access log of recordings: a Redis stream, capped at about
// MaxLen entries.
type Audit struct {
	rdb    redis.UniversalClient
	key    string
	clk    clock.Clock
	maxLen int64
}

// NewAudit returns the audit log under prefix (DefaultPrefix if empty);
// maxLen <= 0 keeps 1,000,000 entries.
func NewAudit(rdb redis.UniversalClient, prefix string, clk clock.Clock, maxLen int64) *Audit {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if clk == nil {
		clk = clock.Real{}
	}
	if maxLen <= 0 {
		maxLen = 1_000_000
	}
	return &Audit{rdb: rdb, key: prefix + "audit", clk: clk, maxLen: maxLen}
}

// Record appends a. Who and a known action are required.
func (a *Audit) Record(ctx context.Context, acc Access) error {
	if acc.Who == "" {
		return ErrNoActor
	}
	if acc.Action == ActionUnknown || int(acc.Action) >= len(actionNames) {
		return fmt.Errorf("recording: audit action %v", acc.Action)
	}
	if acc.At.IsZero() {
		acc.At = a.clk.Now()
	}
	vals := map[string]any{"at": acc.At.UnixMilli(), "who": acc.Who, "action": acc.Action.String(),
		"number": acc.Number, "call_id": acc.CallID, "kind": "", "detail": acc.Detail}
	if acc.Kind != KindUnknown {
		vals["kind"] = acc.Kind.String()
	}
	// The entry id carries the access time, so Read's time range is a range
	// of ids; if the clock is behind the stream's last id, Redis picks the id.
	args := &redis.XAddArgs{Stream: a.key, MaxLen: a.maxLen, Approx: true, Values: vals,
		ID: strconv.FormatInt(acc.At.UnixMilli(), 10) + "-*"}
	err := a.rdb.XAdd(ctx, args).Err()
	if err != nil && strings.Contains(err.Error(), "equal or smaller") {
		args.ID = ""
		err = a.rdb.XAdd(ctx, args).Err()
	}
	if err != nil {
		return fmt.Errorf("recording: audit: %w", err)
	}
	return nil
}

// AuditQuery selects audit records; zero fields match everything.
type AuditQuery struct {
	From, To time.Time // by the time recorded
	Who      string
	CallID   string
	Limit    int // default 100, at most 10,000
}

// Read returns matching records, oldest first.
func (a *Audit) Read(ctx context.Context, q AuditQuery) ([]Access, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	q.Limit = min(q.Limit, 10_000)
	start, stop := "-", "+"
	if !q.From.IsZero() {
		start = strconv.FormatInt(q.From.UnixMilli(), 10)
	}
	if !q.To.IsZero() {
		stop = strconv.FormatInt(q.To.UnixMilli(), 10)
	}
	var out []Access
	for len(out) < q.Limit {
		msgs, err := a.rdb.XRangeN(ctx, a.key, start, stop, 1000).Result()
		if err != nil {
			return nil, fmt.Errorf("recording: audit read: %w", err)
		}
		for _, m := range msgs {
			acc := decodeAccess(m)
			if (q.Who == "" || acc.Who == q.Who) && (q.CallID == "" || acc.CallID == q.CallID) &&
				(q.From.IsZero() || !acc.At.Before(q.From)) && (q.To.IsZero() || !acc.At.After(q.To)) {
				out = append(out, acc)
				if len(out) == q.Limit {
					break
				}
			}
		}
		if len(msgs) < 1000 {
			break
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
	return out, nil
}

func decodeAccess(m redis.XMessage) Access {
	s := func(k string) string { v, _ := m.Values[k].(string); return v }
	acc := Access{ID: m.ID, Who: s("who"), Number: s("number"), CallID: s("call_id"), Detail: s("detail")}
	if ms, err := strconv.ParseInt(s("at"), 10, 64); err == nil {
		acc.At = time.UnixMilli(ms).UTC()
	}
	acc.Action, _ = ParseAction(s("action"))
	if k := s("kind"); k != "" {
		acc.Kind, _ = ParseKind(k)
	}
	return acc
}
