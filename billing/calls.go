package billing

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/phone"
)

// CallFilter selects call-log entries. Zero fields do not filter.
type CallFilter struct {
	Direction call.Direction
	Outcome   call.Outcome
	Agent     string
	Number    string    // the user's number, any form phone.Parse accepts
	Business  string    // the business number's phone_number_id (calls recorded since usage by number exists)
	From, To  time.Time // EndedAt in [From, To)
	Limit     int       // page size; 0 = DefaultCallsLimit, capped at MaxCallsLimit
	Cursor    string    // nextCursor of the previous page; "" = newest
}

// Calls returns the call log, newest recorded first, one page at a time.
// The cursor is the ledger sequence of the last entry returned, so pages
// stay stable while new calls are recorded (they sort before the first
// page). nextCursor is "" after the last page. Number, Agent, Direction and
// Outcome are served by indexes; From/To are checked per entry, examining
// at most Config.ScanLimit entries per call (a short page with a non-empty
// cursor means "continue from here").
func (l *Ledger) Calls(ctx context.Context, f CallFilter) ([]Entry, string, error) {
	limit := f.Limit
	switch {
	case limit < 0:
		return nil, "", fmt.Errorf("billing: calls: negative limit %d", limit)
	case limit == 0:
		limit = DefaultCallsLimit
	case limit > MaxCallsLimit:
		limit = MaxCallsLimit
	}
	upper := "+inf"
	if f.Cursor != "" {
		n, err := strconv.ParseInt(f.Cursor, 10, 64)
		if err != nil || n <= 0 {
			return nil, "", fmt.Errorf("%w: %q", ErrInvalidCursor, f.Cursor)
		}
		upper = "(" + f.Cursor
	}
	idx := l.k.idxAll()
	switch {
	case f.Number != "":
		n, err := phone.Parse(f.Number)
		if err != nil {
			return nil, "", fmt.Errorf("billing: calls: number filter: %w", err)
		}
		idx = l.k.idxNumber(n.Digits)
	case f.Business != "":
		idx = l.k.idxBusiness(f.Business)
	case f.Agent != "":
		idx = l.k.idxAgent(f.Agent)
	case f.Outcome != call.OutcomeUnknown:
		idx = l.k.idxOut(f.Outcome)
	case f.Direction != call.DirectionUnknown:
		idx = l.k.idxDir(f.Direction)
	}

	var out []Entry
	examined := 0
	batch := int64(min(max(limit, 64), 512))
	for examined < l.cfg.ScanLimit {
		ids, err := l.rdb.ZRevRangeByScoreWithScores(ctx, idx, &redis.ZRangeBy{Max: upper, Min: "-inf", Count: batch}).Result()
		if err != nil {
			return nil, "", fmt.Errorf("%w: calls: %w", ErrLedger, err)
		}
		if len(ids) == 0 {
			return out, "", nil
		}
		pipe := l.rdb.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(ids))
		for i, z := range ids {
			cmds[i] = pipe.HGetAll(ctx, l.k.entry(call.ID(fmt.Sprint(z.Member))))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, "", fmt.Errorf("%w: calls: %w", ErrLedger, err)
		}
		for i, cmd := range cmds {
			examined++
			cursor := strconv.FormatInt(int64(ids[i].Score), 10)
			upper = "(" + cursor
			e, err := entryFromHash(cmd.Val())
			if err != nil {
				return nil, "", err
			}
			if f.match(e) {
				out = append(out, e)
				if len(out) == limit {
					if i == len(ids)-1 && int64(len(ids)) < batch {
						return out, "", nil // nothing older
					}
					return out, cursor, nil
				}
			}
			if examined >= l.cfg.ScanLimit {
				return out, cursor, nil
			}
		}
		if int64(len(ids)) < batch {
			return out, "", nil
		}
	}
	return out, "", nil
}

func (f CallFilter) match(e Entry) bool {
	switch {
	case f.Direction != call.DirectionUnknown && e.Direction != f.Direction:
		return false
	case f.Outcome != call.OutcomeUnknown && e.Outcome != f.Outcome:
		return false
	case f.Agent != "" && e.Agent != f.Agent:
		return false
	case f.Business != "" && e.PhoneNumberID != f.Business:
		return false
	case !f.From.IsZero() && e.EndedAt.Before(f.From):
		return false
	case !f.To.IsZero() && !e.EndedAt.Before(f.To):
		return false
	}
	return true
}
