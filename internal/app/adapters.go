package app

import (
	"context"
	"time"

	"github.com/callgw/callgw/billing"
	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/media"
	"github.com/callgw/callgw/permissions"
	"github.com/callgw/callgw/signaling"
	"github.com/callgw/callgw/signaling/cloudapi"
)

// mediaAdapter lets signaling use *media.Engine through its Media interface.
type mediaAdapter struct{ e *media.Engine }

func (m mediaAdapter) NewBridge(id string, ev media.Events) (signaling.Bridge, error) {
	b, err := m.e.NewBridge(id, ev)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// ledgerRecorder lets signaling hand call records to the billing ledger.
type ledgerRecorder struct{ l *billing.Ledger }

func (r ledgerRecorder) Record(ctx context.Context, rec call.Record) error {
	_, _, err := r.l.Record(ctx, rec)
	return err
}

// metaChecker lets the permission tracker fall back to Meta's
// call_permissions endpoint when Redis is down.
type metaChecker struct{ c *cloudapi.Client }

func (m metaChecker) CallPermissions(ctx context.Context, user string) (permissions.MetaPermission, error) {
	p, err := m.c.CallPermissions(ctx, user)
	if err != nil {
		return permissions.MetaPermission{}, err
	}
	out := permissions.MetaPermission{Status: permissions.ParseStatus(p.Status), ExpiresAt: p.ExpiresAt}
	if a, ok := p.Action("start_call"); ok {
		out.CanCall = a.CanPerform
	}
	if a, ok := p.Action("send_call_permission_request"); ok {
		out.CanRequest = a.CanPerform
		out.RequestsLeft24h, out.RequestsLeft7d = -1, -1
		for _, l := range a.Limits {
			left := l.MaxAllowed - l.CurrentUsage
			if left < 0 {
				left = 0
			}
			switch l.Period {
			case 24 * time.Hour:
				out.RequestsLeft24h = left
			case 7 * 24 * time.Hour:
				out.RequestsLeft7d = left
			}
			if left == 0 && l.ExpiresAt.After(out.NextRequestAt) {
				out.NextRequestAt = l.ExpiresAt
			}
		}
	}
	return out, nil
}

type sysClock struct{}

func (sysClock) Now() time.Time { return time.Now() }

// analyticsFetcher reads Meta's analytics for the daily reconciliation.
type analyticsFetcher struct {
	c    *cloudapi.Client
	waba string
}

func (f analyticsFetcher) CallAnalytics(ctx context.Context, from, to time.Time) ([]byte, error) {
	a, err := f.c.CallAnalytics(ctx, f.waba, cloudapi.AnalyticsQuery{Start: from, End: to, Granularity: cloudapi.GranularityDaily,
		Directions: []string{"BUSINESS_INITIATED"}, Dimensions: []string{"country"},
		MetricTypes: []string{"COST", "COUNT", "AVERAGE_DURATION"}})
	if err != nil {
		return nil, err
	}
	return a.Raw, nil
}

func (f analyticsFetcher) PricingAnalytics(ctx context.Context, from, to time.Time) ([]byte, error) {
	a, err := f.c.PricingAnalytics(ctx, f.waba, cloudapi.AnalyticsQuery{Start: from, End: to, Granularity: cloudapi.GranularityDaily,
		Dimensions: []string{"COUNTRY", "PRICING_TYPE", "PRICING_CATEGORY"}})
	if err != nil {
		return nil, err
	}
	return a.Raw, nil
}
