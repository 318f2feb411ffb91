package billing

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// UsageReport is one month of calls and conversations.
type UsageReport struct {
	Month         string              `json:"month"`
	Countries     []CountryUsage      `json:"countries"`
	Conversations []ConversationUsage `json:"conversations"`
	Totals        Totals              `json:"totals"`
}

// CountryUsage is one country's billed calls in a month.
type CountryUsage struct {
	Country       string `json:"country"`
	Calls         int64  `json:"calls"`     // connected business-initiated calls
	AllCalls      int64  `json:"all_calls"` // every recorded call, free ones included
	BilledSeconds int64  `json:"billed_seconds"`
	CostMicros    int64  `json:"cost_micros"`
}

// ConversationUsage is one country and category's conversations in a month.
type ConversationUsage struct {
	Country       string   `json:"country"`
	Category      Category `json:"category"`
	Conversations int64    `json:"conversations"` // opened
	Charged       int64    `json:"charged"`       // opened and not free
	CostMicros    int64    `json:"cost_micros"`
}

// Totals sums a report.
type Totals struct {
	Calls                  int64 `json:"calls"`
	AllCalls               int64 `json:"all_calls"`
	BilledSeconds          int64 `json:"billed_seconds"`
	Minutes                int64 `json:"minutes"` // floor(billed_seconds/60): the volume-tier counter
	CallCostMicros         int64 `json:"call_cost_micros"`
	Conversations          int64 `json:"conversations"`
	ChargedConversations   int64 `json:"charged_conversations"`
	ConversationCostMicros int64 `json:"conversation_cost_micros"`
	CostMicros             int64 `json:"cost_micros"` // calls + conversations
}

// ParseMonth checks a "YYYY-MM" month.
func ParseMonth(month string) (time.Time, error) {
	t, err := time.Parse("2006-01", month)
	if err != nil || len(month) != 7 {
		return time.Time{}, fmt.Errorf("%w: %q (want YYYY-MM, e.g. 2026-11)", ErrInvalidMonth, month)
	}
	return t, nil
}

// Usage reports a month ("2026-11", in Config.Location) from the monthly
// aggregates Record and Conversation maintain. Countries and conversations
// are sorted by country then category.
func (l *Ledger) Usage(ctx context.Context, month string) (*UsageReport, error) {
	if _, err := ParseMonth(month); err != nil {
		return nil, err
	}
	h, err := l.rdb.HGetAll(ctx, l.k.month(month)).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: usage %s: %w", ErrLedger, month, err)
	}
	return usageFromHash(month, h)
}

func usageFromHash(month string, h map[string]string) (*UsageReport, error) {
	r := &UsageReport{Month: month, Countries: []CountryUsage{}, Conversations: []ConversationUsage{}}
	countries := map[string]*CountryUsage{}
	convs := map[[2]string]*ConversationUsage{}
	for f, v := range h {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: month %s field %s: %w", ErrLedger, month, f, err)
		}
		parts := strings.Split(f, ":")
		switch {
		case len(parts) == 1:
			switch f {
			case "calls":
				r.Totals.Calls = n
			case "all_calls":
				r.Totals.AllCalls = n
			case "billed_seconds":
				r.Totals.BilledSeconds = n
			case "cost_micros":
				r.Totals.CallCostMicros = n
			case "minutes":
				r.Totals.Minutes = n
			}
		case len(parts) == 2:
			cu := countries[parts[0]]
			if cu == nil {
				cu = &CountryUsage{Country: parts[0]}
				countries[parts[0]] = cu
			}
			switch parts[1] {
			case "calls":
				cu.Calls = n
			case "all_calls":
				cu.AllCalls = n
			case "billed_seconds":
				cu.BilledSeconds = n
			case "cost_micros":
				cu.CostMicros = n
			}
		case len(parts) == 4 && parts[0] == "conv":
			key := [2]string{parts[1], parts[2]}
			cv := convs[key]
			if cv == nil {
				cv = &ConversationUsage{Country: parts[1], Category: Category(parts[2])}
				convs[key] = cv
			}
			switch parts[3] {
			case "opened":
				cv.Conversations = n
				r.Totals.Conversations += n
			case "charged":
				cv.Charged = n
				r.Totals.ChargedConversations += n
			case "cost_micros":
				cv.CostMicros = n
				r.Totals.ConversationCostMicros += n
			}
		}
	}
	for _, cu := range countries {
		r.Countries = append(r.Countries, *cu)
	}
	for _, cv := range convs {
		r.Conversations = append(r.Conversations, *cv)
	}
	slices.SortFunc(r.Countries, func(a, b CountryUsage) int { return cmp.Compare(a.Country, b.Country) })
	slices.SortFunc(r.Conversations, func(a, b ConversationUsage) int {
		return cmp.Or(cmp.Compare(a.Country, b.Country), cmp.Compare(a.Category, b.Category))
	})
	r.Totals.CostMicros = r.Totals.CallCostMicros + r.Totals.ConversationCostMicros
	return r, nil
}
