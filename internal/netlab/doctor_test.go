package netlab_test

import (
	"context"
	"strings"
	"testing"

	"github.com/callgw/callgw/internal/doctor"
)

// doctorCases run callgw's doctor on the gateway host (callgw not running)
// against the real topology, well configured and with each usual mistake.
func doctorCases(t *testing.T, ctx context.Context, w *world) {
	ok, fail, warn, skip := doctor.StatusOK.String(), doctor.StatusFail.String(), doctor.StatusWarn.String(), doctor.StatusSkipped.String()
	tests := []struct {
		name   string
		env    map[string]string
		ok     bool
		want   map[string]string // check -> status
		detail map[string]string // check -> substring of its detail or fix
	}{
		{"well configured", nil, true,
			map[string]string{doctor.CheckPublicAddress: ok, doctor.CheckTURN: ok, doctor.CheckUDPReachable: ok,
				doctor.CheckGraph: ok, doctor.CheckWebhook: warn},
			map[string]string{doctor.CheckWebhook: "https"}},
		{"wrong public address", map[string]string{"CALLGW_PUBLIC_IP": "198.18.1.99"}, false,
			map[string]string{doctor.CheckPublicAddress: fail, doctor.CheckUDPReachable: fail},
			map[string]string{doctor.CheckPublicAddress: "set CALLGW_PUBLIC_IP=198.18.1.10"}},
		{"no public address behind NAT", map[string]string{"CALLGW_PUBLIC_IP": ""}, false,
			map[string]string{doctor.CheckPublicAddress: fail},
			map[string]string{doctor.CheckPublicAddress: "set CALLGW_PUBLIC_IP=198.18.1.10"}},
		{"media port not forwarded", map[string]string{"CALLGW_UDP_PORT": "40001"}, false,
			map[string]string{doctor.CheckPublicAddress: ok, doctor.CheckUDPReachable: fail},
			map[string]string{doctor.CheckUDPReachable: "forward UDP 40001"}},
		{"wrong TURN secret", map[string]string{"CALLGW_TURN_SECRET": "not-the-coturn-secret-0123"}, false,
			map[string]string{doctor.CheckTURN: fail, doctor.CheckUDPReachable: skip},
			map[string]string{doctor.CheckTURN: "static-auth-secret"}},
		{"invalid access token", map[string]string{"CALLGW_ACCESS_TOKEN": "expired-token"}, false,
			map[string]string{doctor.CheckGraph: fail},
			map[string]string{doctor.CheckGraph: "CALLGW_ACCESS_TOKEN"}},
		{"phone number instead of its id", map[string]string{"CALLGW_PHONE_NUMBER_ID": "15550001111"}, false,
			map[string]string{doctor.CheckGraph: fail},
			map[string]string{doctor.CheckGraph: "CALLGW_PHONE_NUMBER_ID"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := w.gatewayEnv(w.gw.PublicIP)
			for k, v := range tt.env {
				env[k] = v
			}
			p := w.lab.Role(w.gw.Host, "doctor", env)
			defer p.Stop()
			rep, err := p.Wait(ctx, "report")
			if err != nil {
				t.Fatal(err)
			}
			if got := rep["ok"] == "true"; got != tt.ok {
				t.Errorf("report ok = %v, want %v", got, tt.ok)
			}
			for check, st := range tt.want {
				if rep[check] != st {
					t.Errorf("%s: %s (%s), want %s", check, rep[check], rep[check+".detail"], st)
				}
			}
			for check, sub := range tt.detail {
				if !strings.Contains(rep[check+".detail"]+" "+rep[check+".fix"], sub) {
					t.Errorf("%s says %q / %q, want it to mention %q", check, rep[check+".detail"], rep[check+".fix"], sub)
				}
			}
		})
	}
}
