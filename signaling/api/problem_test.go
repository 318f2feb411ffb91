package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/billing"
	"github.com/callgw/callgw/permissions"
	"github.com/callgw/callgw/signaling"
	"github.com/callgw/callgw/signaling/cloudapi"
)

// TestProblem: every error call control, the ledger or the permission store
// returns maps to its status and code; client mistakes are 4xx, outages
// 5xx other than 500, and only an unknown error is 500.
func TestProblem(t *testing.T) {
	opErr := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("i/o timeout")}
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"invalid number", fmt.Errorf("%w: x", signaling.ErrInvalidNumber), 400, "invalid_number"},
		{"invalid pair", fmt.Errorf("x: %w", permissions.ErrInvalidPair), 400, "invalid_number"},
		{"invalid cursor", fmt.Errorf("%w: \"x\"", billing.ErrInvalidCursor), 400, "bad_request"},
		{"invalid month", billing.ErrInvalidMonth, 400, "bad_request"},
		{"ledger down", fmt.Errorf("%w: calls: %w", billing.ErrLedger, opErr), 503, "unavailable"},
		{"permissions down", fmt.Errorf("%w: %w", permissions.ErrUnavailable, opErr), 503, "unavailable"},
		{"meta fallback failed", permissions.ErrMetaFallback, 503, "unavailable"},
		{"store down", fmt.Errorf("%w: x: %w", signaling.ErrStore, redis.ErrClosed), 503, "unavailable"},
		{"bare redis closed", redis.ErrClosed, 503, "unavailable"},
		{"bare network error", opErr, 503, "unavailable"},
		{"bare timeout", fmt.Errorf("x: %w", context.DeadlineExceeded), 503, "unavailable"},
		{"bare refused", fmt.Errorf("x: %w", syscall.ECONNREFUSED), 503, "unavailable"},
		{"bare EOF", fmt.Errorf("x: %w", io.EOF), 503, "unavailable"},
		{"draining", signaling.ErrDraining, 503, "unavailable"},
		{"not configured", signaling.ErrNotConfigured, 503, "unavailable"},
		{"media", signaling.ErrMediaSetup, 503, "unavailable"},
		{"template", signaling.ErrTemplateRequired, 409, "template_required"},
		{"permission", &signaling.PermissionError{Reason: permissions.ReasonNoPermission}, 409, "no_permission"},
		{"meta unreachable", &signaling.MetaError{Err: opErr}, 502, "meta_error"},
		{"meta no permission", &signaling.MetaError{Code: cloudapi.CodeNoPermission, Err: errors.New("x")}, 409, "meta_error"},
		{"meta other", &signaling.MetaError{Code: 131000, Err: errors.New("x")}, 502, "meta_error"},
		{"unknown call", signaling.ErrUnknownCall, 404, "unknown_call"},
		{"a bug", errors.New("nil map"), 500, "internal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, code, msg, _ := problem(tc.err)
			if st != tc.status || code != tc.code {
				t.Fatalf("%d %s, want %d %s", st, code, tc.status, tc.code)
			}
			if msg == "" || msg == tc.err.Error() {
				t.Fatalf("message %q", msg)
			}
			if st == http.StatusServiceUnavailable && msg != "" {
				for _, l := range []string{"tcp", "timeout", "redis:"} {
					if contains(msg, l) {
						t.Fatalf("message leaks %q: %s", l, msg)
					}
				}
			}
		})
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestBearer(t *testing.T) {
	for _, tc := range []struct {
		h, tok string
		ok     bool
	}{
		{"Bearer abc", "abc", true}, {"bearer abc", "abc", true}, {"BEARER  abc ", "abc", true},
		{"Bearer", "", false}, {"Bearer ", "", false}, {"Basic abc", "", false}, {"", "", false}, {"Bearerabc", "", false},
	} {
		if tok, ok := bearer(tc.h); tok != tc.tok || ok != tc.ok {
			t.Errorf("bearer(%q) = %q %v", tc.h, tok, ok)
		}
	}
}
