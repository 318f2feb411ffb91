package billing

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// UsageReport is one month of calls, messages and (legacy) conversations.
type UsageReport struct {
	Month          string              `json:"month"`
	Countries      []CountryUsage      `json:"countries"`
	Numbers        []NumberUsage       `json:"numbers"` // by business number (phone_number_id)
	Messages       []MessageUsage      `json:"messages"`
	Conversations  []ConversationUsage `json:"conversations"`
	Totals         Totals              `json:"totals"`
	Reconciliation *Reconciliation     `json:"reconciliation,omitempty"` // days of the month reconciled with Meta so far
}

// MessageUsage is one pricing category's messages in a month (per-message
// pricing), as settled by the status webhooks.
type MessageUsage struct {
	Category   Category         `json:"category"` // "unknown": pending before any status told the category
	Billable   int64            `json:"billable"` // charged (delivered and billable)
	Free       map[string]int64 `json:"free"`     // delivered and not billable, by pricing type (free_customer_service, …)
	Pending    int64            `json:"pending"`  // sent, not settled yet
	Failed     int64            `json:"failed"`   // failed: never charged
	CostMicros int64            `json:"cost_micros"`
}

// NumberUsage is one business number's calls in a month.
type NumberUsage struct {
	PhoneNumberID string `json:"phone_number_id"`
	Calls         int64  `json:"calls"`     // connected business-initiated calls
	AllCalls      int64  `json:"all_calls"` // every recorded call, free ones included
	BilledSeconds int64  `json:"billed_seconds"`
	CostMicros    int64  `json:"cost_micros"`
}

// CountryUsage is one country's billed calls in a month.
type CountryUsage struct {
	Country       string `json:"country"`
	Market        string `json:"market,omitempty"` // rate card market of the country's billed calls`
	Calls         int64  `json:"calls"`            // connected business-initiated calls
	AllCalls      int64  `json:"all_calls"`        // every recorded call, free ones included
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
	MessagesBillable       int64 `json:"messages_billable"`
	MessagesFree           int64 `json:"messages_free"`
	MessagesPending        int64 `json:"messages_pending"`
	MessageCostMicros      int64 `json:"message_cost_micros"`
	Conversations          int64 `json:"conversations"`
	ChargedConversations   int64 `json:"charged_conversations"`
	ConversationCostMicros int64 `json:"conversation_cost_micros"`
	CostMicros             int64 `json:"cost_micros"` // calls + messages + conversations
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
	r, err := usageFromHash(month, h)
	if err != nil {
		return nil, err
	}
	if r.Reconciliation, err = l.storedReconciliation(ctx, month); err != nil {
		return nil, err
	}
	return r, nil
}

func usageFromHash(month string, h map[string]string) (*UsageReport, error) {
	r := &UsageReport{Month: month, Countries: []CountryUsage{}, Numbers: []NumberUsage{}, Messages: []MessageUsage{}, Conversations: []ConversationUsage{}}
	numbers := map[string]*NumberUsage{}
	countries := map[string]*CountryUsage{}
	convs := map[[2]string]*ConversationUsage{}
	msgs := map[string]*MessageUsage{}
	for f, v := range h {
		parts := strings.Split(f, ":")
		if len(parts) == 2 && parts[1] == "market" {
			cu := countries[parts[0]]
			if cu == nil {
				cu = &CountryUsage{Country: parts[0]}
				countries[parts[0]] = cu
			}
			cu.Market = v
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: month %s field %s: %w", ErrLedger, month, f, err)
		}
		switch {
		case parts[0] == "biz" && len(parts) == 3:
			nu := numbers[parts[1]]
			if nu == nil {
				nu = &NumberUsage{PhoneNumberID: parts[1]}
				numbers[parts[1]] = nu
			}
			switch parts[2] {
			case "calls":
				nu.Calls = n
			case "all_calls":
				nu.AllCalls = n
			case "billed_seconds":
				nu.BilledSeconds = n
			case "cost_micros":
				nu.CostMicros = n
			}
		case parts[0] == "tier" || parts[0] == "pmt":
			// tier counters
		case parts[0] == "pm" && len(parts) >= 3:
			mu := msgs[parts[1]]
			if mu == nil {
				mu = &MessageUsage{Category: Category(parts[1]), Free: map[string]int64{}}
				msgs[parts[1]] = mu
			}
			switch {
			case parts[2] == "billable":
				mu.Billable = n
				r.Totals.MessagesBillable += n
			case parts[2] == "pending":
				mu.Pending = n
				r.Totals.MessagesPending += n
			case parts[2] == "failed":
				mu.Failed = n
			case parts[2] == "cost_micros":
				mu.CostMicros = n
				r.Totals.MessageCostMicros += n
			case parts[2] == "free" && len(parts) == 4:
				mu.Free[parts[3]] = n
				r.Totals.MessagesFree += n
			}
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
	for _, nu := range numbers {
		r.Numbers = append(r.Numbers, *nu)
	}
	sort.Slice(r.Numbers, func(i, j int) bool { return r.Numbers[i].PhoneNumberID < r.Numbers[j].PhoneNumberID })
	for _, cv := range convs {
		r.Conversations = append(r.Conversations, *cv)
	}
	for _, mu := range msgs {
		r.Messages = append(r.Messages, *mu)
	}
	slices.SortFunc(r.Messages, func(a, b MessageUsage) int { return cmp.Compare(a.Category, b.Category) })
	slices.SortFunc(r.Countries, func(a, b CountryUsage) int { return cmp.Compare(a.Country, b.Country) })
	slices.SortFunc(r.Conversations, func(a, b ConversationUsage) int {
		return cmp.Or(cmp.Compare(a.Country, b.Country), cmp.Compare(a.Category, b.Category))
	})
	r.Totals.CostMicros = r.Totals.CallCostMicros + r.Totals.MessageCostMicros + r.Totals.ConversationCostMicros
	return r, nil
}
