package doctor

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"

	"github.com/callgw/callgw/internal/turncred"
)

// DefaultTimeout bounds each network exchange of a check.
const DefaultTimeout = 3 * time.Second

// TURNServer is one TURN URL with the credentials to use on it.
type TURNServer struct {
	URL        string // turn:host:port?transport=udp|tcp or turns:
	Username   string
	Credential string
}

// Config is what the checks need; internal/app builds it from callgw's
// configuration (Config.DoctorConfig).
type Config struct {
	PublicIPs []string // CALLGW_PUBLIC_IP
	UDPPort   int      // CALLGW_UDP_PORT; 0 = PortMin (CALLGW_UDP_PORTS), 0 too = no fixed port
	PortMin   uint16
	// STUN is a stun: URL or host:port; empty = the first TURN URL's
	// host:port (coturn answers STUN there too).
	STUN string
	TURN []TURNServer
	// Graph API.
	GraphURL, GraphVersion, AccessToken, PhoneNumberID string
	// WebhookURL is the public URL Meta posts to; VerifyToken its token.
	WebhookURL, VerifyToken string
	// ListenAddr is callgw's HTTP listen address. When it is free (callgw
	// not running yet) the doctor answers the verification there itself
	// while it checks WebhookURL, so the whole path from outside is tested.
	ListenAddr string
	// MediaPortInUse: callgw runs here and owns the media port (readyz):
	// STUN is asked from another port and the reachability probe is skipped.
	MediaPortInUse bool
	Timeout        time.Duration
	HTTPClient     *http.Client
	// TLSConfig for turns: URLs (nil: system roots).
	TLSConfig *tls.Config
}

// Run performs every check; it never fails as a whole, each check reports.
func Run(ctx context.Context, c Config) Report {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: c.Timeout}
	}
	d := &run{cfg: c}
	defer d.close()
	return Report{d.publicAddress(ctx), d.turnCredentials(ctx), d.reachable(ctx), d.graph(ctx), d.webhook(ctx)}
}

type run struct {
	cfg     Config
	media   net.PacketConn // bound to the media port when free
	mapped  *net.UDPAddr
	relay   net.PacketConn // first TURN allocation, for the probe
	relURL  string
	closers []func()
}

func (d *run) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
}

func (d *run) port() int {
	if d.cfg.UDPPort > 0 {
		return d.cfg.UDPPort
	}
	return int(d.cfg.PortMin)
}

func (d *run) stunAddr() string {
	if d.cfg.STUN != "" {
		if u, err := turncred.ParseURL(d.cfg.STUN); err == nil {
			return u.Addr()
		}
		return d.cfg.STUN
	}
	for _, t := range d.cfg.TURN {
		if u, err := turncred.ParseURL(t.URL); err == nil && u.Scheme == "turn" {
			return u.Addr()
		}
	}
	return ""
}

func (d *run) publicAddress(ctx context.Context) Result {
	r := Result{Name: CheckPublicAddress}
	server := d.stunAddr()
	if server == "" {
		r.Status, r.Detail = StatusSkipped, "no STUN server configured"
		r.Fix = "add a stun: URL to CALLGW_ICE_SERVERS or set CALLGW_TURN_URLS (coturn answers STUN)"
		return r
	}
	bind := "0.0.0.0:0"
	from := "an ephemeral port"
	if p := d.port(); p > 0 && !d.cfg.MediaPortInUse {
		conn, err := net.ListenPacket("udp4", net.JoinHostPort("0.0.0.0", strconv.Itoa(p)))
		if err != nil {
			r.Status, r.Detail = StatusFail, fmt.Sprintf("cannot bind media port %d: %v", p, err)
			r.Fix = "stop whatever holds the port (a running callgw? then use /readyz?verbose), or change CALLGW_UDP_PORT"
			return r
		}
		d.media = conn
		d.closers = append(d.closers, func() { _ = conn.Close() })
		from = fmt.Sprintf("media port %d", p)
	}
	conn := d.media
	if conn == nil {
		c, err := net.ListenPacket("udp4", bind)
		if err != nil {
			r.Status, r.Detail = StatusFail, err.Error()
			return r
		}
		defer c.Close()
		conn = c
	}
	mapped, err := stunBinding(ctx, conn, server, d.cfg.Timeout)
	if err != nil {
		r.Status, r.Detail = StatusFail, fmt.Sprintf("STUN server %s did not answer from %s: %v", server, from, err)
		r.Fix = "let UDP out to the STUN/TURN server (firewall, security group egress) and check it runs"
		return r
	}
	d.mapped = mapped
	seen := mapped.IP.String()
	switch {
	case len(d.cfg.PublicIPs) == 0 && isLocalIP(mapped.IP):
		r.Status, r.Detail = StatusOK, fmt.Sprintf("no NAT: the STUN server sees %s, an address of this host", mapped)
	case len(d.cfg.PublicIPs) == 0:
		r.Status, r.Detail = StatusFail, fmt.Sprintf("behind NAT: the STUN server sees %s from %s and CALLGW_PUBLIC_IP is not set", mapped, from)
		r.Fix = fmt.Sprintf("set CALLGW_PUBLIC_IP=%s and forward the media UDP port to this host 1:1", seen)
	case !slices.Contains(d.cfg.PublicIPs, seen):
		r.Status = StatusFail
		r.Detail = fmt.Sprintf("CALLGW_PUBLIC_IP is %s but the STUN server sees this host as %s", strings.Join(d.cfg.PublicIPs, ","), seen)
		r.Fix = fmt.Sprintf("set CALLGW_PUBLIC_IP=%s: agents send their ICE checks to the advertised address, so with a wrong one ICE never connects and nobody hears anything", seen)
	case d.media != nil && mapped.Port != d.port():
		r.Status = StatusWarn
		r.Detail = fmt.Sprintf("the STUN server sees %s: the NAT rewrites media port %d to %d", mapped, d.port(), mapped.Port)
		r.Fix = "map the UDP port 1:1 (DNAT inbound and SNAT outbound keeping the port)"
	default:
		r.Status, r.Detail = StatusOK, fmt.Sprintf("the STUN server %s sees %s from %s, as configured", server, mapped, from)
	}
	return r
}

func (d *run) turnCredentials(ctx context.Context) Result {
	r := Result{Name: CheckTURN}
	if len(d.cfg.TURN) == 0 {
		r.Status, r.Detail = StatusSkipped, "no TURN server configured"
		r.Fix = "agents on networks that block UDP need TURN over TCP/TLS: set CALLGW_TURN_SECRET and CALLGW_TURN_URLS"
		return r
	}
	var ok, bad []string
	var fixes []string
	for _, t := range d.cfg.TURN {
		relay, closeFn, err := d.allocate(ctx, t)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", t.URL, err))
			var te *stun.TurnError
			switch {
			case errors.As(err, &te) && te.ErrorCodeAttr.Code == stun.CodeUnauthorized:
				fixes = append(fixes, "the TURN server refused the credentials: CALLGW_TURN_SECRET must equal coturn's static-auth-secret (use-auth-secret), the realm must match and both clocks must be right")
			case errors.Is(err, ErrNoResponse):
				fixes = append(fixes, "no answer from "+t.URL+": open the port toward the TURN server and check it listens on that transport")
			default:
				fixes = append(fixes, "check "+t.URL+" (host, port, transport, certificate)")
			}
			continue
		}
		d.closers = append(d.closers, closeFn)
		ok = append(ok, fmt.Sprintf("%s → relay %s", t.URL, relay.LocalAddr()))
		if d.relay == nil {
			d.relay, d.relURL = relay, t.URL
		}
	}
	r.Detail = strings.Join(append(ok, bad...), "; ")
	r.Status = StatusOK
	if len(bad) > 0 {
		r.Status = StatusFail
		r.Fix = strings.Join(slices.Compact(fixes), "; ")
	}
	return r
}

// allocate opens a TURN allocation on t.
func (d *run) allocate(ctx context.Context, t TURNServer) (net.PacketConn, func(), error) {
	u, err := turncred.ParseURL(t.URL)
	if err != nil {
		return nil, nil, err
	}
	if u.Scheme != "turn" && u.Scheme != "turns" {
		return nil, nil, fmt.Errorf("not a turn: URL")
	}
	var conn net.PacketConn
	dialer := &net.Dialer{Timeout: d.cfg.Timeout}
	switch {
	case u.Scheme == "turns":
		tc, err := (&tls.Dialer{NetDialer: dialer, Config: tlsFor(d.cfg.TLSConfig, u.Host)}).DialContext(ctx, "tcp", u.Addr())
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrNoResponse, err)
		}
		conn = turn.NewSTUNConn(tc)
	case u.Transport == "tcp":
		tc, err := dialer.DialContext(ctx, "tcp", u.Addr())
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrNoResponse, err)
		}
		conn = turn.NewSTUNConn(tc)
	default:
		pc, err := net.ListenPacket("udp4", "0.0.0.0:0")
		if err != nil {
			return nil, nil, err
		}
		conn = pc
	}
	cl, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: u.Addr(), STUNServerAddr: u.Addr(),
		Username: t.Username, Password: t.Credential, Conn: conn, RTO: 200 * time.Millisecond})
	if err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	if err := cl.Listen(); err != nil {
		cl.Close()
		_ = conn.Close()
		return nil, nil, err
	}
	actx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	relay, err := cl.AllocateWithContext(actx)
	if err != nil {
		cl.Close()
		_ = conn.Close()
		if actx.Err() != nil {
			err = fmt.Errorf("%w: %w", ErrNoResponse, err)
		}
		return nil, nil, err
	}
	return relay, func() { _ = relay.Close(); cl.Close(); _ = conn.Close() }, nil
}

func tlsFor(c *tls.Config, host string) *tls.Config {
	if c == nil {
		return &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	c = c.Clone()
	if c.ServerName == "" {
		c.ServerName = host
	}
	return c
}

// reachable sends a datagram from the TURN relay (outside) to the public
// media address and waits for it on the media port.
func (d *run) reachable(ctx context.Context) Result {
	r := Result{Name: CheckUDPReachable}
	switch {
	case d.cfg.MediaPortInUse:
		r.Status, r.Detail = StatusSkipped, "the running callgw owns the media port"
		r.Fix = "run `callgw doctor` on this host before starting callgw to probe the port from outside"
		return r
	case d.port() == 0:
		r.Status, r.Detail = StatusWarn, "no fixed media port: every call uses a random UDP port"
		r.Fix = "set CALLGW_UDP_PORT (one port for all calls) or CALLGW_UDP_PORTS and forward it"
		return r
	case d.media == nil:
		r.Status, r.Detail = StatusSkipped, "the media port could not be bound (see public address)"
		return r
	case d.relay == nil:
		r.Status, r.Detail = StatusSkipped, "needs a TURN allocation to send from outside"
		r.Fix = "configure CALLGW_TURN_SECRET and CALLGW_TURN_URLS to test the port from outside"
		return r
	}
	host := ""
	if len(d.cfg.PublicIPs) > 0 {
		host = d.cfg.PublicIPs[0]
	} else if d.mapped != nil {
		host = d.mapped.IP.String()
	}
	if host == "" {
		r.Status, r.Detail = StatusSkipped, "public address unknown"
		return r
	}
	to := &net.UDPAddr{IP: net.ParseIP(host), Port: d.port()}
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	probe := []byte("callgw-doctor " + hex.EncodeToString(nonce))
	got := make(chan bool, 1)
	go func() {
		buf := make([]byte, 1500)
		_ = d.media.SetReadDeadline(time.Now().Add(d.cfg.Timeout))
		for {
			n, _, err := d.media.ReadFrom(buf)
			if err != nil {
				got <- false
				return
			}
			if string(buf[:n]) == string(probe) {
				got <- true
				return
			}
		}
	}()
	// The first datagram creates the TURN permission; send a few in case
	// one is lost.
	for i := 0; i < 3; i++ {
		if _, err := d.relay.WriteTo(probe, to); err != nil {
			r.Status, r.Detail = StatusFail, fmt.Sprintf("TURN relay could not send to %s: %v", to, err)
			return r
		}
	}
	select {
	case ok := <-got:
		if ok {
			r.Status, r.Detail = StatusOK, fmt.Sprintf("a datagram from the TURN relay (%s) to %s arrived on the media port", d.relURL, to)
			return r
		}
	case <-ctx.Done():
	}
	r.Status, r.Detail = StatusFail, fmt.Sprintf("a datagram sent from outside (the TURN relay) to %s never arrived", to)
	r.Fix = fmt.Sprintf("forward UDP %d on %s to this host (DNAT, 1:1) and open it in the firewall/security group; Meta and agents send media there", d.port(), host)
	return r
}

func (d *run) graph(ctx context.Context) Result {
	r := Result{Name: CheckGraph}
	if d.cfg.GraphURL == "" || d.cfg.AccessToken == "" {
		r.Status, r.Detail = StatusSkipped, "no Graph API configured (demo mode)"
		return r
	}
	u := strings.TrimRight(d.cfg.GraphURL, "/") + "/" + d.cfg.GraphVersion + "/" + url.PathEscape(d.cfg.PhoneNumberID) + "/settings"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		r.Status, r.Detail = StatusFail, err.Error()
		r.Fix = "check CALLGW_GRAPH_URL"
		return r
	}
	req.Header.Set("Authorization", "Bearer "+d.cfg.AccessToken)
	resp, err := d.cfg.HTTPClient.Do(req)
	if err != nil {
		r.Status, r.Detail = StatusFail, fmt.Sprintf("cannot reach %s: %v", d.cfg.GraphURL, err)
		r.Fix = "let HTTPS out to the Graph API (DNS, egress firewall, proxy)"
		return r
	}
	defer resp.Body.Close()
	var body struct {
		Calling struct {
			Status string `json:"status"`
		} `json:"calling"`
		Error struct {
			Message string `json:"message"`
			Code    int    `json:"code"`
			Subcode int    `json:"error_subcode"`
		} `json:"error"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body)
	switch {
	case resp.StatusCode == http.StatusOK && body.Calling.Status == "ENABLED":
		r.Status, r.Detail = StatusOK, fmt.Sprintf("token valid, number %s has calling enabled", d.cfg.PhoneNumberID)
	case resp.StatusCode == http.StatusOK:
		r.Status, r.Detail = StatusWarn, fmt.Sprintf("token valid, but calling on number %s is %q", d.cfg.PhoneNumberID, body.Calling.Status)
		r.Fix = `enable calling: POST /<PHONE_NUMBER_ID>/settings {"calling":{"status":"ENABLED"}}`
	case body.Error.Code == 190 || resp.StatusCode == http.StatusUnauthorized:
		r.Status, r.Detail = StatusFail, fmt.Sprintf("token rejected (%d %s)", body.Error.Code, body.Error.Message)
		r.Fix = "CALLGW_ACCESS_TOKEN is invalid or expired: issue a system-user token with whatsapp_business_messaging"
	case body.Error.Code == 100:
		r.Status, r.Detail = StatusFail, fmt.Sprintf("number id %s unknown to this token (%s)", d.cfg.PhoneNumberID, body.Error.Message)
		r.Fix = "CALLGW_PHONE_NUMBER_ID must be the Graph id of the business number (WhatsApp Manager → API setup), not the phone number"
	case body.Error.Code == 2635:
		r.Status, r.Detail = StatusFail, body.Error.Message
		r.Fix = "set CALLGW_GRAPH_VERSION to a supported version"
	default:
		r.Status, r.Detail = StatusFail, fmt.Sprintf("HTTP %d (%d %s)", resp.StatusCode, body.Error.Code, body.Error.Message)
		r.Fix = "check CALLGW_GRAPH_URL, CALLGW_GRAPH_VERSION and the token's permissions"
	}
	return r
}

func (d *run) webhook(ctx context.Context) Result {
	r := Result{Name: CheckWebhook}
	if d.cfg.WebhookURL == "" {
		r.Status, r.Detail = StatusSkipped, "no public URL configured"
		r.Fix = "set CALLGW_PUBLIC_URL to the https URL Meta reaches"
		return r
	}
	nonce := make([]byte, 4)
	_, _ = rand.Read(nonce)
	challenge := strconv.FormatUint(uint64(nonce[0])<<24|uint64(nonce[1])<<16|uint64(nonce[2])<<8|uint64(nonce[3]), 10)
	q := url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {d.cfg.VerifyToken}, "hub.challenge": {challenge}}
	u := d.cfg.WebhookURL + "?" + q.Encode()
	servedBy := ""
	if d.cfg.ListenAddr != "" && !d.cfg.MediaPortInUse {
		if stop, err := serveVerification(d.cfg.ListenAddr, d.cfg.VerifyToken); err == nil {
			defer stop()
			servedBy = " (answered by the doctor listening on " + d.cfg.ListenAddr + ")"
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		r.Status, r.Detail = StatusFail, err.Error()
		r.Fix = "check CALLGW_PUBLIC_URL"
		return r
	}
	resp, err := d.cfg.HTTPClient.Do(req)
	if err != nil {
		r.Status, r.Detail = StatusFail, fmt.Sprintf("cannot reach %s: %v", d.cfg.WebhookURL, err)
		r.Fix = "CALLGW_PUBLIC_URL must reach this callgw from the Internet (DNS, TLS certificate, load balancer, TCP port forwarded); from inside a NAT without hairpinning, run the check from outside"
		return r
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	switch {
	case resp.StatusCode == http.StatusOK && strings.TrimSpace(string(b)) == challenge:
		r.Status, r.Detail = StatusOK, fmt.Sprintf("%s echoed the challenge%s", d.cfg.WebhookURL, servedBy)
		if strings.HasPrefix(d.cfg.WebhookURL, "http://") {
			r.Status = StatusWarn
			r.Fix = "Meta delivers webhooks to https URLs only: put TLS in front (load balancer or reverse proxy)"
		}
	case resp.StatusCode == http.StatusForbidden:
		r.Status, r.Detail = StatusFail, fmt.Sprintf("%s refused the verify token (403)", d.cfg.WebhookURL)
		r.Fix = "CALLGW_VERIFY_TOKEN must equal the verify token entered in the Meta app's webhook settings, on every instance behind this URL"
	default:
		r.Status, r.Detail = StatusFail, fmt.Sprintf("%s answered %d %q", d.cfg.WebhookURL, resp.StatusCode, strings.TrimSpace(string(b)))
		r.Fix = "the URL must route GET and POST /webhooks/whatsapp to callgw"
	}
	return r
}

// serveVerification answers Meta's subscription check on addr until stop.
func serveVerification(addr, token string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{ReadHeaderTimeout: 2 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/webhooks/whatsapp" || q.Get("hub.mode") != "subscribe" ||
			subtle.ConstantTimeCompare([]byte(q.Get("hub.verify_token")), []byte(token)) != 1 {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		fmt.Fprint(w, q.Get("hub.challenge"))
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	return func() { _ = srv.Close(); <-done }, nil
}

// stunBinding asks server what address conn is seen from.
func stunBinding(ctx context.Context, conn net.PacketConn, server string, timeout time.Duration) (*net.UDPAddr, error) {
	to, err := net.ResolveUDPAddr("udp4", server)
	if err != nil {
		return nil, err
	}
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	defer conn.SetReadDeadline(time.Time{}) //nolint:errcheck
	buf := make([]byte, 1500)
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		if _, err := conn.WriteTo(req.Raw, to); err != nil {
			return nil, err
		}
		wait := time.Now().Add(time.Duration(250<<min(attempt, 3)) * time.Millisecond)
		if wait.After(deadline) {
			wait = deadline
		}
		_ = conn.SetReadDeadline(wait)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				break // retransmit
			}
			var res stun.Message
			res.Raw = append([]byte(nil), buf[:n]...)
			if res.Decode() != nil || res.TransactionID != req.TransactionID {
				continue
			}
			var xor stun.XORMappedAddress
			if err := xor.GetFrom(&res); err != nil {
				return nil, fmt.Errorf("stun response without XOR-MAPPED-ADDRESS: %w", err)
			}
			return &net.UDPAddr{IP: xor.IP, Port: xor.Port}, nil
		}
	}
	return nil, ErrNoResponse
}

func isLocalIP(ip net.IP) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}
