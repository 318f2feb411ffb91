package billing

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/callgw/callgw/internal/phone"
)

// FormatUSD formats integer micro-USD as a decimal string with six
// fraction digits, without floating point: 1234567 -> "1.234567",
// -5 -> "-0.000005".
func FormatUSD(micros int64) string {
	sign := ""
	u := uint64(micros)
	if micros < 0 {
		sign, u = "-", uint64(-(micros+1))+1 // safe for MinInt64
	}
	return fmt.Sprintf("%s%d.%06d", sign, u/1_000_000, u%1_000_000)
}

// WriteUsageCSV writes r as CSV with one row per country, per conversation
// country+category, and a total row. Money columns are integer micro-USD
// plus the same amount formatted in USD.
func WriteUsageCSV(w io.Writer, r *UsageReport) error {
	cw := csv.NewWriter(w)
	i := strconv.FormatInt
	rows := [][]string{{"month", "kind", "country", "category", "calls", "all_calls", "billed_seconds", "conversations", "charged_conversations", "cost_micros", "cost_usd"}}
	for _, c := range r.Countries {
		rows = append(rows, []string{r.Month, "call", c.Country, "", i(c.Calls, 10), i(c.AllCalls, 10), i(c.BilledSeconds, 10), "", "", i(c.CostMicros, 10), FormatUSD(c.CostMicros)})
	}
	for _, c := range r.Conversations {
		rows = append(rows, []string{r.Month, "conversation", c.Country, string(c.Category), "", "", "", i(c.Conversations, 10), i(c.Charged, 10), i(c.CostMicros, 10), FormatUSD(c.CostMicros)})
	}
	t := r.Totals
	rows = append(rows, []string{r.Month, "total", "", "", i(t.Calls, 10), i(t.AllCalls, 10), i(t.BilledSeconds, 10), i(t.Conversations, 10), i(t.ChargedConversations, 10), i(t.CostMicros, 10), FormatUSD(t.CostMicros)})
	if err := cw.WriteAll(rows); err != nil {
		return fmt.Errorf("billing: usage csv: %w", err)
	}
	return nil
}

// WriteCallsCSV writes call-log entries as CSV. With mask, the user's number
// goes through phone.Mask and the user's name and id are left out.
func WriteCallsCSV(w io.Writer, es []Entry, mask bool) error {
	cw := csv.NewWriter(w)
	i := strconv.FormatInt
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	if err := cw.Write([]string{"seq", "call_id", "direction", "outcome", "end_reason", "agent", "user_phone", "user_name", "user_id",
		"business_phone", "country", "created_at", "answered_at", "ended_at", "meta_duration", "gateway_duration_ms",
		"duration_source", "billed_seconds", "rate_micros_per_minute", "tier", "cost_micros", "cost_usd", "error_code"}); err != nil {
		return fmt.Errorf("billing: calls csv: %w", err)
	}
	for _, e := range es {
		user, name, uid := e.UserPhone, e.UserName, e.UserID
		if mask {
			user, name, uid = phone.Mask(e.UserPhone), "", ""
		}
		row := []string{e.Seq, string(e.ID), e.Direction.String(), e.Outcome.String(), e.EndReason.String(), cell(e.Agent),
			user, cell(name), cell(uid), e.BusinessPhone, e.Country, ts(e.CreatedAt), ts(e.AnsweredAt), ts(e.EndedAt),
			i(e.MetaDuration, 10), i(e.GatewayMillis, 10), e.DurationSource, i(e.BilledSeconds, 10),
			i(e.RateMicrosPerMinute, 10), strconv.Itoa(e.Tier), i(e.CostMicros, 10), FormatUSD(e.CostMicros), strconv.Itoa(e.ErrorCode)}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("billing: calls csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("billing: calls csv: %w", err)
	}
	return nil
}

// cell defuses spreadsheet formulas in free text (names, agent ids): a
// leading = + - @ gets a quote so the cell stays text.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// WriteUsageTable writes r as an aligned text table (for
// `callgw usage --month 2026-11`).
func WriteUsageTable(w io.Writer, r *UsageReport) error {
	if _, err := fmt.Fprintf(w, "Usage %s (USD)\n", r.Month); err != nil {
		return fmt.Errorf("billing: usage table: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	i := strconv.FormatInt
	fmt.Fprintf(tw, "COUNTRY\tCALLS\tALL CALLS\tBILLED SECONDS\tMINUTES\tCOST USD\t\n")
	for _, c := range r.Countries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", c.Country, i(c.Calls, 10), i(c.AllCalls, 10), i(c.BilledSeconds, 10), i(c.BilledSeconds/60, 10), FormatUSD(c.CostMicros))
	}
	t := r.Totals
	fmt.Fprintf(tw, "TOTAL CALLS\t%s\t%s\t%s\t%s\t%s\t\n", i(t.Calls, 10), i(t.AllCalls, 10), i(t.BilledSeconds, 10), i(t.Minutes, 10), FormatUSD(t.CallCostMicros))
	fmt.Fprintf(tw, "\t\t\t\t\t\t\n")
	fmt.Fprintf(tw, "COUNTRY\tCATEGORY\tCONVERSATIONS\tCHARGED\tFREE\tCOST USD\t\n")
	for _, c := range r.Conversations {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", c.Country, c.Category, i(c.Conversations, 10), i(c.Charged, 10), i(c.Conversations-c.Charged, 10), FormatUSD(c.CostMicros))
	}
	fmt.Fprintf(tw, "TOTAL CONVERSATIONS\t\t%s\t%s\t%s\t%s\t\n", i(t.Conversations, 10), i(t.ChargedConversations, 10), i(t.Conversations-t.ChargedConversations, 10), FormatUSD(t.ConversationCostMicros))
	fmt.Fprintf(tw, "\t\t\t\t\t\t\n")
	fmt.Fprintf(tw, "TOTAL\t\t\t\t\t%s\t\n", FormatUSD(t.CostMicros))
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("billing: usage table: %w", err)
	}
	return nil
}
