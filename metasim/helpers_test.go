package metasim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/oggopus"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testSecret = "app-secret"
	testToken  = "access-token"
)

// hook is one webhook received by the test receiver, signature verified.
type hook struct {
	raw  []byte
	body map[string]any
}

// value returns entry[0].changes[0].value.
func (h hook) value() map[string]any {
	e := h.body["entry"].([]any)[0].(map[string]any)
	return e["changes"].([]any)[0].(map[string]any)["value"].(map[string]any)
}

func (h hook) field() string {
	e := h.body["entry"].([]any)[0].(map[string]any)
	return e["changes"].([]any)[0].(map[string]any)["field"].(string)
}

// values returns every change value of every entry (batched POSTs carry several).
func (h hook) values() []map[string]any {
	var out []map[string]any
	for _, e := range h.body["entry"].([]any) {
		for _, c := range e.(map[string]any)["changes"].([]any) {
			out = append(out, c.(map[string]any)["value"].(map[string]any))
		}
	}
	return out
}

// first returns value[key][0] of the first change that has key.
func (h hook) first(key string) map[string]any {
	for _, v := range h.values() {
		if l, ok := v[key].([]any); ok && len(l) > 0 {
			return l[0].(map[string]any)
		}
	}
	return nil
}

// receiver is callgw's webhook endpoint as far as the tests care: it checks
// the signature with its own HMAC and queues the parsed bodies.
type receiver struct {
	srv    *httptest.Server
	hooks  chan hook
	status atomic.Int32
	badSig atomic.Int32
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{hooks: make(chan hook, 256)}
	r.status.Store(200)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		raw, _ := io.ReadAll(req.Body)
		mac := hmac.New(sha256.New, []byte(testSecret))
		mac.Write(raw)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		if !hmac.Equal([]byte(want), []byte(req.Header.Get("X-Hub-Signature-256"))) || req.Header.Get("Content-Type") != "application/json" {
			r.badSig.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		status := int(r.status.Load()) // decided before the test can see the hook
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		select {
		case r.hooks <- hook{raw: raw, body: body}:
		default:
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// wait returns the next webhook matching pred, skipping others.
func (r *receiver) wait(t *testing.T, what string, pred func(hook) bool) hook {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case h := <-r.hooks:
			if pred(h) {
				return h
			}
		case <-deadline:
			t.Fatalf("timed out waiting for webhook: %s", what)
		}
	}
}

func callEventIs(id, event string) func(hook) bool {
	return func(h hook) bool {
		for _, v := range h.values() {
			if l, ok := v["calls"].([]any); ok && len(l) > 0 {
				if c := l[0].(map[string]any); c["id"] == id && c["event"] == event {
					return true
				}
			}
		}
		return false
	}
}

func statusIs(id, status string) func(hook) bool {
	return func(h hook) bool {
		c := h.first("statuses")
		return c != nil && c["id"] == id && c["status"] == status
	}
}

func permissionReplyHook(h hook) bool {
	m := h.first("messages")
	if m == nil {
		return false
	}
	i, _ := m["interactive"].(map[string]any)
	return i != nil && i["type"] == "call_permission_reply"
}

type env struct {
	sim   *Sim
	graph *httptest.Server
	recv  *receiver
}

func newEnv(t *testing.T, mutate func(*Config)) *env {
	t.Helper()
	recv := newReceiver(t)
	cfg := Config{AppSecret: testSecret, AccessToken: testToken, VerifyToken: "vt", WebhookURL: recv.srv.URL,
		LoopbackOnly: true, WebhookBackoff: 10 * time.Millisecond}
	if mutate != nil {
		mutate(&cfg)
	}
	sim, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	graph := httptest.NewServer(sim.GraphHandler())
	t.Cleanup(func() {
		graph.Close()
		if err := sim.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &env{sim: sim, graph: graph, recv: recv}
}

// call sends a Graph request and returns status and decoded body.
func (e *env) call(t *testing.T, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, e.graph.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (e *env) calls(t *testing.T, body map[string]any) (int, map[string]any) {
	t.Helper()
	body["messaging_product"] = "whatsapp"
	return e.call(t, "POST", "/v23.0/100000000000001/calls", testToken, body)
}

func errCode(body map[string]any) int {
	e, ok := body["error"].(map[string]any)
	if !ok {
		return 0
	}
	c, _ := e["code"].(float64)
	return int(c)
}

func readOgg(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pkts, err := oggopus.ReadPackets(f)
	if err != nil {
		t.Fatal(err)
	}
	return pkts
}

func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bizPeer plays the business side, written here independently of callgw's
// media package: full ICE agent (controlling against ICE-lite), DTLS client.
type bizPeer struct {
	pc    *webrtc.PeerConnection
	track *webrtc.TrackLocalStaticSample
	stop  chan struct{}
	wg    sync.WaitGroup

	mu    sync.Mutex
	opus  [][]byte
	dtmf  strings.Builder
	dtmfT map[uint32]bool
	got   chan struct{} // signalled per opus packet
	dtmfC chan struct{}
}

func newBizPeer(t *testing.T) *bizPeer {
	t.Helper()
	m := &webrtc.MediaEngine{}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "useinbandfec=1"}, PayloadType: 111}, webrtc.RTPCodecTypeAudio))
	must(m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: "audio/telephone-event", ClockRate: 8000, SDPFmtpLine: "0-15"}, PayloadType: 126}, webrtc.RTPCodecTypeAudio))
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	must(se.SetAnsweringDTLSRole(webrtc.DTLSRoleClient))
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	must(err)
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "biz")
	must(err)
	snd, err := pc.AddTrack(track)
	must(err)
	b := &bizPeer{pc: pc, track: track, stop: make(chan struct{}), dtmfT: map[uint32]bool{},
		got: make(chan struct{}, 1), dtmfC: make(chan struct{}, 1)}
	b.wg.Go(func() {
		for {
			if _, _, err := snd.ReadRTCP(); err != nil {
				return
			}
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			b.mu.Lock()
			switch p.PayloadType {
			case 111:
				b.opus = append(b.opus, append([]byte(nil), p.Payload...))
				select {
				case b.got <- struct{}{}:
				default:
				}
			case 126:
				if len(p.Payload) >= 4 && !b.dtmfT[p.Timestamp] {
					b.dtmfT[p.Timestamp] = true
					b.dtmf.WriteByte(dtmfChars[p.Payload[0]])
					select {
					case b.dtmfC <- struct{}{}:
					default:
					}
				}
			}
			b.mu.Unlock()
		}
	})
	t.Cleanup(b.close)
	return b
}

func (b *bizPeer) close() {
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	_ = b.pc.Close()
	b.wg.Wait()
}

func (b *bizPeer) gather(t *testing.T, d webrtc.SessionDescription) string {
	t.Helper()
	done := webrtc.GatheringCompletePromise(b.pc)
	if err := b.pc.SetLocalDescription(d); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("business gathering timed out")
	}
	return b.pc.LocalDescription().SDP
}

func (b *bizPeer) answer(t *testing.T, offer string) string {
	t.Helper()
	if err := b.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		t.Fatal(err)
	}
	ans, err := b.pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b.gather(t, ans)
}

func (b *bizPeer) offer(t *testing.T) string {
	t.Helper()
	o, err := b.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b.gather(t, o)
}

func (b *bizPeer) setAnswer(t *testing.T, sdp string) {
	t.Helper()
	if err := b.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		t.Fatal(err)
	}
}

// play sends pkts in a loop every 20 ms until close.
func (b *bizPeer) play(pkts [][]byte) {
	b.wg.Go(func() {
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for i := 0; ; i++ {
			select {
			case <-b.stop:
				return
			case <-tk.C:
			}
			_ = b.track.WriteSample(media.Sample{Data: pkts[i%len(pkts)], Duration: 20 * time.Millisecond})
		}
	})
}

func (b *bizPeer) waitOpus(t *testing.T, n int) [][]byte {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		b.mu.Lock()
		if len(b.opus) >= n {
			out := append([][]byte(nil), b.opus...)
			b.mu.Unlock()
			return out
		}
		b.mu.Unlock()
		select {
		case <-b.got:
		case <-deadline:
			t.Fatalf("business received fewer than %d opus packets", n)
		}
	}
}

func (b *bizPeer) waitDTMF(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		b.mu.Lock()
		got := b.dtmf.String()
		b.mu.Unlock()
		if got == want {
			return
		}
		if len(got) >= len(want) {
			t.Fatalf("business got DTMF %q, want %q", got, want)
		}
		select {
		case <-b.dtmfC:
		case <-deadline:
			t.Fatalf("business got DTMF %q, want %q", got, want)
		}
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
