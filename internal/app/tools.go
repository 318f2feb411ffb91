package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/billing"
)

// Usage reads a month's usage report from the ledger in Redis.
func Usage(ctx context.Context, redisURL, rateCard, month string) (*billing.UsageReport, error) {
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	var rc *billing.RateCard
	if rateCard != "" {
		rc, err = billing.LoadRateCardFile(rateCard)
	} else {
		rc, err = billing.SampleRateCard()
	}
	if err != nil {
		return nil, err
	}
	l, err := billing.NewLedger(rdb, rc, billing.Config{}, prometheus.NewRegistry(), nil)
	if err != nil {
		return nil, err
	}
	return l.Usage(ctx, month)
}

// WriteJSON writes v indented.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

var fqNameRe = regexp.MustCompile(`fqName: "([^"]+)"`)

// MetricNames builds a demo instance (not serving) and lists the metric
// families it registers, so that dashboards and alerts can be checked
// against what really exists.
func MetricNames() ([]string, error) {
	// Recording on, so that its metrics are registered too.
	cfg, err := LoadConfig([]string{"-addr", "127.0.0.1:0", "-recording", "both"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		return nil, err
	}
	a, err := New(context.Background(), cfg, nil)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	ch := make(chan *prometheus.Desc, 256)
	go func() { a.Registry.Describe(ch); close(ch) }()
	seen := map[string]bool{}
	var out []string
	for d := range ch {
		if m := fqNameRe.FindStringSubmatch(d.String()); m != nil && !seen[m[1]] {
			seen[m[1]] = true
			out = append(out, m[1])
		}
	}
	return out, nil
}
