package app

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/callgw/callgw/internal/doctor"
	"github.com/callgw/callgw/signaling/cloudapi"
)

// DoctorConfig is what `callgw doctor` and /readyz?verbose check: the
// media address and port, the STUN/TURN servers agents are given (with
// credentials issued the way agents get them), the Graph API and the
// public webhook URL.
func (c Config) DoctorConfig() (doctor.Config, error) {
	d := doctor.Config{PublicIPs: c.PublicIPs, UDPPort: c.UDPPort, PortMin: c.UDPPortMin,
		GraphURL: c.GraphURL, GraphVersion: c.GraphVersion, AccessToken: c.AccessToken,
		PhoneNumberID: c.PhoneNumberID, VerifyToken: c.VerifyToken, ListenAddr: c.Addr}
	switch {
	case c.Demo: // the simulator plays Meta: nothing to reach outside
		d.GraphURL, d.AccessToken = "", ""
	case d.GraphURL == "":
		d.GraphURL = cloudapi.DefaultBaseURL
	}
	if c.PublicURL != "" {
		d.WebhookURL = strings.TrimRight(c.PublicURL, "/") + "/webhooks/whatsapp"
	}
	servers, err := c.ParseICEServers()
	if err != nil {
		return d, err
	}
	for _, s := range servers {
		for _, u := range s.URLs {
			switch {
			case strings.HasPrefix(u, "stun:") && d.STUN == "":
				d.STUN = u
			case strings.HasPrefix(u, "turn:"), strings.HasPrefix(u, "turns:"):
				d.TURN = append(d.TURN, doctor.TURNServer{URL: u, Username: s.Username, Credential: s.Credential})
			}
		}
	}
	turn, err := c.TURNIssuer()
	if err != nil {
		return d, err
	}
	if turn != nil {
		cred := turn.Issue("callgw-doctor")
		for _, u := range cred.URLs {
			d.TURN = append(d.TURN, doctor.TURNServer{URL: u, Username: cred.Username, Credential: cred.Credential})
		}
	}
	return d, nil
}

// readyVerbose serves /readyz?verbose: readiness, Redis, then the doctor's
// checks (the media port itself is not probed: this process owns it). It
// answers 503 when anything failed. It talks to the Graph API and the TURN
// server: for people, not for probes.
func (a *App) readyVerbose(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	ok := a.ready.Load()
	var b strings.Builder
	if ok {
		fmt.Fprintln(&b, "[ok  ] ready                  taking calls")
	} else {
		fmt.Fprintln(&b, "[FAIL] ready                  not ready (starting or draining)")
	}
	if err := a.Redis.Ping(ctx).Err(); err != nil {
		ok = false
		fmt.Fprintf(&b, "[FAIL] redis                  %v\n", err)
	} else {
		fmt.Fprintln(&b, "[ok  ] redis                  ping")
	}
	dc, err := a.Cfg.DoctorConfig()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if a.Sim != nil { // demo: check the Graph API callgw really talks to
		dc.GraphURL, dc.AccessToken = a.URL+"/sim/graph", a.Cfg.AccessToken
	}
	dc.MediaPortInUse = true
	dc.Timeout = 2 * time.Second
	rep := doctor.Run(ctx, dc)
	rep.Write(&b)
	if !ok || !rep.OK() {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_, _ = w.Write([]byte(b.String()))
}
