package main

import (
	"net"
	"strings"
	"testing"
)

func TestDoctorCommand(t *testing.T) {
	closed := func() string { // a local port nobody listens on
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return "http://" + l.Addr().String()
	}()
	real := env("CALLGW_GRAPH_URL", closed, "CALLGW_ACCESS_TOKEN", "token", "CALLGW_APP_SECRET", "app-secret",
		"CALLGW_VERIFY_TOKEN", "verify", "CALLGW_PHONE_NUMBER_ID", "1234", "CALLGW_TOKEN_SECRET", secret)
	for _, tc := range []struct {
		name string
		args []string
		env  func(string) string
		code int
		want []string
	}{
		{"demo: nothing to check", []string{"doctor"}, env(), 0, []string{"[skip] graph api", "all checks passed"}},
		{"graph api unreachable", []string{"doctor", "-addr", "127.0.0.1:0"}, real, 1,
			[]string{"[FAIL] graph api", "cannot reach " + closed, "fix:", "some checks FAILED"}},
		{"bad configuration", []string{"doctor", "-udp-ports", "x"}, env(), 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.args, tc.env)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s", code, tc.code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
