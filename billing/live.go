package billing

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Quote prices a live business-initiated call pulse by pulse, so the agent
// page can show its running cost. It is taken once when the call is
// answered (one Redis read for the market's tier volume so far this month)
// and then computed without I/O.
type Quote struct {
	Country          string    `json:"country"`
	Market           string    `json:"market"`
	Month            string    `json:"month"`
	IncrementSeconds int64     `json:"increment_seconds"`
	Tiers            []Tier    `json:"tiers"`
	UsedSeconds      int64     `json:"used_seconds"` // accrued toward the market's tiers before this call
	TierBasis        TierBasis `json:"tier_basis"`
}

// LiveQuote returns the quote for a call to userPhone (or, without a
// number, the BSUID userID) answered at start.
func (l *Ledger) LiveQuote(ctx context.Context, userPhone, userID string, start time.Time) (Quote, error) {
	country := CountryOf(userPhone, userID)
	month := l.monthOf(start)
	card := l.rc.For(month)
	m := card.MarketOf(country)
	q := Quote{Country: country, Market: m.ID, Month: month, IncrementSeconds: m.IncrementSeconds, Tiers: m.Tiers, TierBasis: card.TierBasis}
	v, err := l.rdb.HGet(ctx, l.k.month(month), tierField(card, m.ID)).Result()
	switch {
	case err == nil:
		if q.UsedSeconds, err = strconv.ParseInt(v, 10, 64); err != nil {
			return q, fmt.Errorf("%w: tier counter: %w", ErrLedger, err)
		}
	case errors.Is(err, redis.Nil):
	default:
		return q, fmt.Errorf("%w: live quote: %w", ErrLedger, err)
	}
	return q, nil
}

// CostAt is the call's cost after elapsed connected time: the pulses begun
// so far (a begun pulse is billed whole) at the tier the call would reach
// if it ended now. It changes only at pulse boundaries.
func (q Quote) CostAt(elapsed time.Duration) (billedSeconds, costMicros int64) {
	secs := int64(elapsed / time.Second)
	if elapsed%time.Second > 0 {
		secs++
	}
	m := Market{IncrementSeconds: q.IncrementSeconds, Tiers: q.Tiers}
	billedSeconds = m.BilledSeconds(secs)
	add := billedSeconds
	if q.TierBasis == TierBasisRaw {
		add = secs
	}
	if len(q.Tiers) == 0 {
		return billedSeconds, 0
	}
	rate := q.Tiers[m.TierFor(satAdd(q.UsedSeconds, add))].RateMicrosPerMinute
	return billedSeconds, CostMicros(billedSeconds, rate)
}

// NextPulse is the elapsed time at which the next pulse begins (when CostAt
// next changes).
func (q Quote) NextPulse(elapsed time.Duration) time.Duration {
	inc := time.Duration(max(q.IncrementSeconds, 1)) * time.Second
	return (elapsed/inc + 1) * inc
}
