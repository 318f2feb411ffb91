package media

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// bridged builds one fully connected call (Meta peer, bridge, agent peer).
func bridged(tb testing.TB, e *Engine, plain bool) *harness {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := newHarness(tb, e)
	h.plain = plain
	h.connectWhatsApp(ctx)
	h.connectAgent(ctx)
	return h
}

// BenchmarkForward measures the per-packet forwarding path of our code plus
// Pion's SRTP write and the UDP send: parse, stats, rewrite, WriteRTP.
func BenchmarkForward(b *testing.B) {
	e := newTestEngine(b, nil)
	h := bridged(b, e, true)
	h.meta.discard.Store(true)
	h.agent.Load().discard.Store(true)
	payload := loadOpus(b, "caller-440.ogg")[50]
	for _, tc := range []struct {
		name string
		leg  *leg
		rec  bool
	}{
		{"whatsapp_to_agent", h.b.waLeg(), false},
		{"agent_to_whatsapp", h.b.agent.Load(), false},
		{"whatsapp_to_agent_recording", h.b.waLeg(), true},
		{"agent_to_whatsapp_recording", h.b.agent.Load(), true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			// Recording: the tap's rings as StartRecording makes them, drained
			// here every 64 packets into a sink that keeps nothing (the
			// recording goroutine's job, without its 100 ms period, so that
			// every packet is copied rather than dropped).
			var rec *recorder
			if tc.rec {
				m := e.metrics
				rec = &recorder{user: newRecRing(m.recDropUser), biz: newRecRing(m.recDropBiz),
					userSink: &countSink{}, bizSink: &countSink{}}
				h.b.out.rec.Store(rec)
				defer h.b.out.rec.Store(nil)
			}
			fw := forwarder{b: h.b, l: tc.leg, wa: tc.leg.kind == legWhatsApp, opusIn: 111, teIn: 126}
			hdr := rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: 1, Timestamp: 1, SSRC: 0x1234}
			pkt, err := (&rtp.Packet{Header: hdr, Payload: payload}).Marshal()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			seq, ts := uint16(1), uint32(1)
			for b.Loop() {
				seq++
				ts += 960
				pkt[2], pkt[3] = byte(seq>>8), byte(seq)
				pkt[4], pkt[5], pkt[6], pkt[7] = byte(ts>>24), byte(ts>>16), byte(ts>>8), byte(ts)
				fw.handle(time.Now(), pkt)
				if rec != nil && seq%64 == 0 {
					rec.user.drain(rec.userSink, &rec.userErr)
					rec.biz.drain(rec.bizSink, &rec.bizErr)
				}
			}
			if rec != nil {
				rec.user.drain(rec.userSink, &rec.userErr)
				rec.biz.drain(rec.bizSink, &rec.bizErr)
				sink := rec.userSink.(*countSink)
				if tc.leg.kind == legAgent {
					sink = rec.bizSink.(*countSink)
				}
				if sink.n != b.N {
					b.Fatalf("tap got %d packets of %d", sink.n, b.N)
				}
				if d := testutil.ToFloat64(e.metrics.RecordDropped.WithLabelValues("user")) +
					testutil.ToFloat64(e.metrics.RecordDropped.WithLabelValues("business")); d != 0 {
					b.Fatalf("tap dropped %v packets", d)
				}
			}
		})
	}
}

// countSink is a PacketSink that only counts.
type countSink struct{ n int }

func (s *countSink) WritePacket([]byte, uint32) error { s.n++; return nil }

// BenchmarkForwardFast measures the fast path's whole per-packet work
// (PathFast): SRTP decrypt of a packet from Meta, parse, stats, rewrite,
// SRTP encrypt for the agent and the UDP send, one packet per system call
// ("single") or 32 per sendmmsg as the read loop batches them ("batch32"),
// and the SRTP parts alone ("decrypt", "decrypt+encrypt": no system call).
// The packets are encrypted beforehand with the Meta leg's real keys.
func BenchmarkForwardFast(b *testing.B) {
	e := newTestEngine(b, func(c *Config) { c.PacketPath = PathFast })
	h := bridged(b, e, true)
	h.agent.Load().discard.Store(true)
	h.meta.discard.Store(true)
	fl := h.b.waLeg().fast.Load()
	if fl == nil || h.b.agent.Load().fast.Load() == nil {
		b.Fatal("legs not on the fast path")
	}
	cfg, _, err := legKeys(h.b.waLeg())
	if err != nil {
		b.Fatal(err)
	}
	// Meta's side: it encrypts with the keys we decrypt with. The receive
	// context skips replay checks so that the packets can be replayed.
	metaTx, err := srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, cfg.Profile)
	if err != nil {
		b.Fatal(err)
	}
	if fl.rx, err = srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, cfg.Profile,
		srtp.SRTPNoReplayProtection()); err != nil {
		b.Fatal(err)
	}
	if fl.rxG != nil {
		fl.rxG.replay = false
	}
	b.Logf("profile %v, own AEAD-GCM SRTP: %v", cfg.Profile, fl.rxG != nil)
	payload := loadOpus(b, "caller-440.ogg")[50]
	const n = 1024
	pkts := make([][]byte, n)
	for i := range pkts {
		p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: uint16(i + 1),
			Timestamp: uint32(i+1) * 960, SSRC: 0x1234}, Payload: payload}
		raw, err := p.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		if pkts[i], err = metaTx.EncryptRTP(nil, raw, nil); err != nil {
			b.Fatal(err)
		}
	}
	scratch := make([]byte, 1600)
	in := make([]byte, 1600) // the received datagram, decrypted in place (as the batch buffer is)
	decrypt := func(i int) ([]byte, error) {
		p := in[:copy(in, pkts[i%n])]
		if fl.rxG != nil {
			return fl.rxG.decrypt(p, &fl.fw.hdr)
		}
		return fl.rx.DecryptRTP(scratch[:0], p, &fl.fw.hdr)
	}
	// The parts without the system call: SRTP decrypt alone, and decrypt +
	// encrypt with the agent leg's context (what the crypto costs of the
	// whole).
	agTx := h.b.agent.Load().fast.Load()
	b.Run("decrypt", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := decrypt(i); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("decrypt+encrypt", func(b *testing.B) {
		b.ReportAllocs()
		out := make([]byte, 0, 1600)
		i := 0
		for b.Loop() {
			plain, err := decrypt(i)
			if err != nil {
				b.Fatal(err)
			}
			agTx.txMu.Lock()
			if agTx.txG != nil {
				hl := rtpHeaderLen(plain)
				agTx.txG.encrypt(append(out[:0], plain[:hl]...), fl.fw.hdr.SSRC, fl.fw.hdr.SequenceNumber, plain[hl:])
			} else {
				_, err = agTx.tx.EncryptRTP(out[:0], plain, &agTx.txHdr)
			}
			agTx.txMu.Unlock()
			if err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	sent := func() uint64 { return h.b.Stats().Agent.PacketsSent }
	for _, batch := range []int{1, 32} {
		name := "single"
		if batch > 1 {
			name = "batch32"
		}
		b.Run(name, func(b *testing.B) {
			before := sent()
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			i := 0
			for b.Loop() {
				if batch > 1 && i%batch == 0 {
					fl.sock.setBatching(true)
				}
				fl.receive(time.Now(), in[:copy(in, pkts[i%n])], scratch)
				i++
				if batch > 1 && i%batch == 0 {
					fl.sock.setBatching(false)
				}
			}
			fl.sock.setBatching(false)
			if got := sent() - before; got < uint64(i) {
				b.Fatalf("forwarded %d of %d", got, i)
			}
		})
	}
}

// TestForwardingLatency logs the one-way latency Meta peer -> bridge ->
// agent peer over loopback (two SRTP hops, two UDP hops, our forwarding);
// the bridge adds at most this. Figures only: no assertion on time.
func TestForwardingLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e := newTestEngine(t, nil)
	h := bridged(t, e, false)
	agent := h.agent.Load()
	caller := loadOpus(t, "caller-440.ogg")
	h.meta.play(caller, nil, nil)
	const n = 500
	agent.waitFor(ctx, "500 packets", func(got []rxPacket) bool { return len(got) >= n+50 })
	h.meta.sendMu.Lock()
	sentAt := map[uint16]time.Time{}
	for _, s := range h.meta.sentLog {
		sentAt[s.seq] = s.at
	}
	h.meta.sendMu.Unlock()
	var lat []time.Duration
	for _, g := range agent.received()[50:] { // skip warm-up
		if at, ok := sentAt[g.seq]; ok {
			lat = append(lat, g.at.Sub(at))
		}
	}
	if len(lat) < n/2 {
		t.Fatalf("only %d matched packets", len(lat))
	}
	slices.Sort(lat)
	t.Logf("meta->bridge->agent one-way latency over loopback, %d packets: p50=%v p99=%v max=%v",
		len(lat), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
}

// TestResourcesPerCall bridges 50 calls (20 under -race) with audio flowing both ways and
// logs heap and goroutines per call, net of a control run with the same
// test peers connected directly and also playing audio both ways, on each
// packet path. The fast path's one read goroutine handles every packet of
// the engine: under the race detector (~10x the CPU per packet) 50 calls in
// one process with 100 test peers exceed one core (set-up stalls from ~25
// calls on a loaded box), so it runs without -race only.
func TestResourcesPerCall(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	for _, tc := range []struct {
		path PacketPath
		// Per call: two stock Pion PeerConnections cost 12 goroutines each
		// (ICE task loop, connectivity checks, candidate read loop; DTLS
		// handshake FSM, DTLS read loop and its context watchers; the
		// DTLS/SRTP mux; SRTP and SRTCP session read loops and their
		// undeclared-stream acceptors) plus Pion's OnTrack goroutine per leg
		// (our RTP read loop on Pion's path). RTCP is handled without a
		// goroutine on both paths. The fast path's single socket is Pion's
		// ICE UDP mux, which adds one goroutine per leg (its conn watcher),
		// as it does on Pion's path with Config.UDPPort; but once a leg is
		// fast, its SRTP/SRTCP sessions and receiver are closed (5 fewer per
		// leg), then its ICE gathering context watcher and DTLS handshake
		// FSM end (trim.go, 2 fewer): 7 per leg remain, all ICE and DTLS.
		maxGoroutines float64
		// maxHeapKB: 0 not checked. The fast path's bridge-only heap in this
		// process (net of the test peers) is 230-242 KB per call (282 KB
		// before fast legs closed Pion's SRTP sessions); the gateway process
		// of cmd/callgw-load measures 175-179 KB (20-1,000 calls). A guard
		// against regressions, not the target.
		maxHeapKB int64
	}{
		{PathPion, 26, 0},
		{PathFast, 14, 265},
	} {
		t.Run(tc.path.String(), func(t *testing.T) {
			if tc.path == PathFast && raceEnabled {
				t.Skip("one read goroutine for the whole engine: under -race the calls and test peers exceed a core")
			}
			testResourcesPerCall(t, tc.path, tc.maxGoroutines, tc.maxHeapKB)
		})
	}
}

func testResourcesPerCall(t *testing.T, path PacketPath, maxGoroutines float64, maxHeapKB int64) {
	calls := 50
	if raceEnabled {
		calls = 20 // goroutines per call are the same; the race detector's CPU is not
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	measure := func() (heap uint64, goroutines int) {
		for range 3 {
			runtime.GC()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc, runtime.NumGoroutine()
	}
	audio := loadOpus(t, "caller-440.ogg")[:50]
	flowing := func(p *peer) {
		p.waitFor(ctx, "audio", func(got []rxPacket) bool { return countPT(got, 111, true) >= 3 })
		p.discard.Store(true)
	}

	// Control: the same peers, Meta-like offerer to browser-like answerer.
	h0, g0 := measure()
	for range calls {
		m, a := newMetaPeer(t, true), newPeer(t, peerAPI(t, false, "", true))
		// The agent leg offers a second, send-only track (side.go: whisper,
		// consult); the browser-like peer receives it as a declared stream.
		// The control answerer gets one too, so only the bridge is measured.
		if _, err := m.pc.AddTransceiverFromTrack(newOutTrack("side", "peer"),
			webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
		m.setAnswer(a.answer(ctx, m.offer(ctx), false))
		m.waitConnected(ctx)
		a.waitConnected(ctx)
		m.play(audio, nil, nil)
		a.play(audio, nil, nil)
		flowing(m)
		flowing(a)
	}
	h1, g1 := measure()
	ctrlHeap, ctrlG := int64(h1)-int64(h0), g1-g0

	e := newTestEngine(t, func(c *Config) { c.PacketPath = path })
	h2, g2 := measure()
	for range calls {
		h := bridged(t, e, false)
		ag := h.agent.Load()
		h.meta.play(audio, nil, nil)
		ag.play(audio, nil, nil)
		flowing(h.meta)
		flowing(ag)
	}
	h3, g3 := measure()
	bridgedHeap, bridgedG := int64(h3)-int64(h2), g3-g2
	perHeap := (bridgedHeap - ctrlHeap) / int64(calls)
	perG := float64(bridgedG-ctrlG) / float64(calls)
	t.Logf("%v path, %d calls: control peers %d B %d goroutines; bridged total %d B %d goroutines", path, calls, ctrlHeap, ctrlG, bridgedHeap, bridgedG)
	t.Logf("%v path, per bridged call (bridge only): heap %d KB, goroutines %.1f", path, perHeap/1024, perG)
	if perG > maxGoroutines {
		t.Errorf("%.1f goroutines per call, limit %v", perG, maxGoroutines)
	}
	if maxHeapKB > 0 && perHeap/1024 > maxHeapKB {
		t.Errorf("heap %d KB per call, limit %d KB", perHeap/1024, maxHeapKB)
	}
}

// BenchmarkPlayTick measures the pacer's step for one bridge while a
// prompt plays (one 20 ms packet per tick, looping): schedule, rewrite,
// Pion's SRTP write and the send, with the recording tap on or off.
func BenchmarkPlayTick(b *testing.B) {
	e := newTestEngine(b, nil)
	h := bridged(b, e, true)
	h.meta.discard.Store(true)
	p, err := LoadPromptFile("testdata/tone-700.opus")
	if err != nil {
		b.Fatal(err)
	}
	for _, rec := range []bool{false, true} {
		name := "prompt"
		if rec {
			name = "prompt_recording"
		}
		b.Run(name, func(b *testing.B) {
			var r *recorder
			if rec {
				m := e.metrics
				r = &recorder{user: newRecRing(m.recDropUser), biz: newRecRing(m.recDropBiz),
					userSink: &countSink{}, bizSink: &countSink{}}
				h.b.out.rec.Store(r)
				defer h.b.out.rec.Store(nil)
			}
			// the engine's pacer ticks this bridge too; this loop drives its own
			// clock far ahead so that both only ever send what is due
			if _, err := h.b.Play([]*Prompt{p}, PlayOptions{Loop: true}); err != nil {
				b.Fatal(err)
			}
			defer h.b.StopPlayback()
			before := testutil.ToFloat64(e.metrics.PromptPackets)
			now := time.Now().Add(time.Hour)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				now = now.Add(frameDuration)
				h.b.out.tick(now, e.metrics, true)
				if i++; r != nil && i%64 == 0 {
					r.biz.drain(r.bizSink, &r.bizErr)
				}
			}
			if sent := testutil.ToFloat64(e.metrics.PromptPackets) - before; sent < float64(i) {
				b.Fatalf("sent %v prompt packets in %d ticks", sent, i)
			}
		})
	}
}

// BenchmarkRecordTap is the recording tap's own cost per packet on the
// forwarding path: copy into the ring (drained every 64 packets, as the
// recording goroutine would, into a sink that counts).
func BenchmarkRecordTap(b *testing.B) {
	m, err := NewMetrics(nil)
	if err != nil {
		b.Fatal(err)
	}
	r := newRecRing(m.recDropUser)
	sink := &countSink{}
	var sinkErr error
	payload := loadOpus(b, "caller-440.ogg")[50]
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	ts, i := uint32(0), 0
	for b.Loop() {
		ts += 960
		r.push(payload, ts)
		if i++; i%64 == 0 {
			r.drain(sink, &sinkErr)
		}
	}
	r.drain(sink, &sinkErr)
	if sink.n != b.N || testutil.ToFloat64(m.recDropUser) != 0 {
		b.Fatalf("sink got %d of %d", sink.n, b.N)
	}
}
