package billing

import (
	"encoding/csv"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/callgw/callgw/phone"
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

// WriteUsageCSV writes r as CSV with one row per country (calls), per
// message category and pricing type, per conversation country+category,
// per reconciled day × market × kind, and a total row. Money columns are
// integer micros plus the same amount formatted with six decimals.
func WriteUsageCSV(w io.Writer, r *UsageReport) error {
	cw := csv.NewWriter(w)
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	rows := [][]string{{"month", "kind", "country", "category", "calls", "all_calls", "billed_seconds", "conversations",
		"charged_conversations", "messages", "pricing_type", "date", "meta_cost_micros", "difference_micros", "cost_micros", "cost_usd"}}
	for _, c := range r.Countries {
		rows = append(rows, []string{r.Month, "call", c.Country, "", i(c.Calls), i(c.AllCalls), i(c.BilledSeconds), "", "", "", "", "", "", "", i(c.CostMicros), FormatUSD(c.CostMicros)})
	}
	for _, m := range r.Messages {
		cat := string(m.Category)
		if m.Billable > 0 || m.CostMicros > 0 {
			rows = append(rows, []string{r.Month, "message", "", cat, "", "", "", "", "", i(m.Billable), "regular", "", "", "", i(m.CostMicros), FormatUSD(m.CostMicros)})
		}
		for _, t := range sortedKeys(m.Free) {
			rows = append(rows, []string{r.Month, "message", "", cat, "", "", "", "", "", i(m.Free[t]), t, "", "", "", "0", FormatUSD(0)})
		}
		if m.Pending > 0 {
			rows = append(rows, []string{r.Month, "message", "", cat, "", "", "", "", "", i(m.Pending), "pending", "", "", "", "", ""})
		}
		if m.Failed > 0 {
			rows = append(rows, []string{r.Month, "message", "", cat, "", "", "", "", "", i(m.Failed), "failed", "", "", "", "0", FormatUSD(0)})
		}
	}
	for _, c := range r.Conversations {
		rows = append(rows, []string{r.Month, "conversation", c.Country, string(c.Category), "", "", "", i(c.Conversations), i(c.Charged), "", "", "", "", "", i(c.CostMicros), FormatUSD(c.CostMicros)})
	}
	if rc := r.Reconciliation; rc != nil {
		for _, d := range rc.Days {
			meta := ""
			if d.Meta != nil {
				meta = i(d.Meta.CostMicros)
			}
			rows = append(rows, []string{r.Month, "reconciliation_" + string(d.Kind), d.Market, string(d.Status), "", "", i(d.Ours.BilledSeconds), "", "", i(d.Ours.Count), "", d.Date, meta, i(d.Difference), i(d.Ours.CostMicros), FormatUSD(d.Ours.CostMicros)})
		}
	}
	t := r.Totals
	rows = append(rows, []string{r.Month, "total", "", "", i(t.Calls), i(t.AllCalls), i(t.BilledSeconds), i(t.Conversations), i(t.ChargedConversations), i(t.MessagesBillable), "", "", "", "", i(t.CostMicros), FormatUSD(t.CostMicros)})
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
		"duration_source", "billed_seconds", "rate_micros_per_minute", "tier", "cost_micros", "cost_usd", "error_code", "market", "flags"}); err != nil {
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
			i(e.RateMicrosPerMinute, 10), strconv.Itoa(e.Tier), i(e.CostMicros, 10), FormatUSD(e.CostMicros), strconv.Itoa(e.ErrorCode),
			cell(e.Market), e.Flags}
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

func sortedKeys(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
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
	fmt.Fprintf(tw, "MESSAGE CATEGORY\tBILLABLE\tFREE\tPENDING\tFAILED\tCOST USD\t\n")
	for _, m := range r.Messages {
		var free int64
		for _, n := range m.Free {
			free += n
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", m.Category, i(m.Billable, 10), i(free, 10), i(m.Pending, 10), i(m.Failed, 10), FormatUSD(m.CostMicros))
	}
	fmt.Fprintf(tw, "TOTAL MESSAGES\t%s\t%s\t%s\t\t%s\t\n", i(t.MessagesBillable, 10), i(t.MessagesFree, 10), i(t.MessagesPending, 10), FormatUSD(t.MessageCostMicros))
	if rc := r.Reconciliation; rc != nil {
		fmt.Fprintf(tw, "\t\t\t\t\t\t\n")
		fmt.Fprintf(tw, "RECONCILIATION %s\tMARKET\tKIND\tOURS USD\tMETA USD\tDIFFERENCE USD\t\n", rc.Status)
		for _, d := range rc.Days {
			meta := "n/a"
			if d.Meta != nil {
				meta = FormatUSD(d.Meta.CostMicros)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", d.Date, d.Market, d.Kind, FormatUSD(d.Ours.CostMicros), meta, FormatUSD(d.Difference))
		}
	}
	fmt.Fprintf(tw, "\t\t\t\t\t\t\n")
	fmt.Fprintf(tw, "TOTAL\t\t\t\t\t%s\t\n", FormatUSD(t.CostMicros))
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("billing: usage table: %w", err)
	}
	return nil
}
