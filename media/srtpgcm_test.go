package media

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// gcmPair is one direction's keys, as pion/srtp and rtpGCM each hold them.
type gcmPair struct {
	profile   srtp.ProtectionProfile
	key, salt []byte
}

func newGCMPair(t testing.TB, p srtp.ProtectionProfile) gcmPair {
	t.Helper()
	kl, _ := p.KeyLen()
	sl, _ := p.SaltLen()
	g := gcmPair{profile: p, key: make([]byte, kl), salt: make([]byte, sl)}
	_, _ = rand.Read(g.key)
	_, _ = rand.Read(g.salt)
	return g
}

func (g gcmPair) pion(t testing.TB) *srtp.Context {
	t.Helper()
	c, err := srtp.CreateContext(g.key, g.salt, g.profile, srtp.SRTPReplayProtection(rtpReplayWindow))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (g gcmPair) ours(t testing.TB, replay bool) *rtpGCM {
	t.Helper()
	c, err := newRTPGCM(g.profile, g.key, g.salt, replay)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testPacket is a marshalled RTP packet with a header extension, a CSRC
// or padding, depending on i, so header lengths vary.
func testPacket(t testing.TB, ssrc uint32, seq uint16, i int) []byte {
	t.Helper()
	p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq,
		Timestamp: uint32(i) * 960, SSRC: ssrc, Marker: i%7 == 0}, Payload: bytes.Repeat([]byte{byte(i), 0xfc}, 40+i%30)}
	switch i % 4 {
	case 1:
		p.Header.CSRC = []uint32{0xdeadbeef}
	case 2:
		if err := p.Header.SetExtension(1, []byte{0x30}); err != nil {
			t.Fatal(err)
		}
	case 3:
		p.Header.Padding, p.PaddingSize = true, 4
	}
	raw, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestRTPGCMInterop: what pion/srtp encrypts rtpGCM decrypts to the same
// packet and the other way round, for both GCM profiles, across a
// sequence-number wrap (the ROC), with CSRCs, extensions and padding.
func TestRTPGCMInterop(t *testing.T) {
	for _, p := range []srtp.ProtectionProfile{srtp.ProtectionProfileAeadAes128Gcm, srtp.ProtectionProfileAeadAes256Gcm} {
		t.Run(p.String(), func(t *testing.T) {
			g := newGCMPair(t, p)
			pionTx, pionRx := g.pion(t), g.pion(t)
			ourTx, ourRx := g.ours(t, false), g.ours(t, true)
			const ssrc = 0x11223344
			var h rtp.Header
			for i := range 300 { // 65400 .. 164 after the wrap
				seq := uint16(65400 + i)
				plain := testPacket(t, ssrc, seq, i)
				// pion -> ours
				enc, err := pionTx.EncryptRTP(nil, plain, nil)
				if err != nil {
					t.Fatal(err)
				}
				got, err := ourRx.decrypt(bytes.Clone(enc), &h)
				if err != nil {
					t.Fatalf("packet %d (seq %d): ours cannot decrypt pion's: %v", i, seq, err)
				}
				if !bytes.Equal(got, plain) || h.SequenceNumber != seq || h.SSRC != ssrc {
					t.Fatalf("packet %d: decrypted differs", i)
				}
				// ours -> pion
				hl := rtpHeaderLen(plain)
				out := make([]byte, hl, len(plain)+32)
				copy(out, plain[:hl])
				ourEnc := ourTx.encrypt(out, ssrc, seq, plain[hl:])
				if !bytes.Equal(ourEnc, enc) {
					t.Fatalf("packet %d: our ciphertext differs from pion's for the same packet and index", i)
				}
				back, err := pionRx.DecryptRTP(nil, ourEnc, nil)
				if err != nil || !bytes.Equal(back, plain) {
					t.Fatalf("packet %d: pion cannot decrypt ours: %v", i, err)
				}
			}
			if s := ourRx.state(ssrc); s == nil || s.index>>16 != 1 {
				t.Fatalf("receive state after the wrap: %+v, want ROC 1", s)
			}
		})
	}
}

// TestRTPGCMReplayAndForgery: a replayed packet, one older than the window
// and a forged one are refused and change nothing; reordered packets in
// the window are accepted once each; a forged packet of an unknown SSRC
// makes no state.
func TestRTPGCMReplayAndForgery(t *testing.T) {
	g := newGCMPair(t, srtp.ProtectionProfileAeadAes128Gcm)
	tx, rx := g.pion(t), g.ours(t, true)
	const ssrc = 0xabc
	enc := make([][]byte, 200)
	for i := range enc {
		var err error
		if enc[i], err = tx.EncryptRTP(nil, testPacket(t, ssrc, uint16(1000+i), i), nil); err != nil {
			t.Fatal(err)
		}
	}
	var h rtp.Header
	try := func(i int) error { _, err := rx.decrypt(bytes.Clone(enc[i]), &h); return err }
	order := []int{0, 1, 3, 2, 5, 4, 100}
	for _, i := range order {
		if err := try(i); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	cases := []struct {
		name string
		pkt  []byte
		want error
	}{
		{"replayed highest", enc[100], errSRTPReplay},
		{"replayed reordered", enc[4], errSRTPReplay},
		{"older than the window", enc[36], errSRTPReplay}, // 100-36 = 64
		{"forged", func() []byte { p := bytes.Clone(enc[150]); p[len(p)-1] ^= 1; return p }(), errSRTPAuth},
		{"forged payload", func() []byte { p := bytes.Clone(enc[151]); p[20] ^= 0x80; return p }(), errSRTPAuth},
		{"forged header", func() []byte { p := bytes.Clone(enc[152]); p[1] ^= 1; return p }(), errSRTPAuth},
		{"short", enc[153][:20], errSRTPShort},
	}
	for _, c := range cases {
		before := rx.states
		if _, err := rx.decrypt(bytes.Clone(c.pkt), &h); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if rx.states != before {
			t.Errorf("%s changed the state", c.name)
		}
	}
	if err := try(37); err != nil { // in the window, not seen yet
		t.Fatalf("packet 37: %v", err)
	}
	if err := try(150); err != nil { // the genuine one after its forgery
		t.Fatalf("packet 150: %v", err)
	}
	// An unknown SSRC with a bad tag makes no state.
	other, err := g.pion(t).EncryptRTP(nil, testPacket(t, 0x999, 5, 5), nil)
	if err != nil {
		t.Fatal(err)
	}
	other[len(other)-2] ^= 4
	if _, err := rx.decrypt(other, &h); !errors.Is(err, errSRTPAuth) || rx.state(0x999) != nil || rx.n != 1 {
		t.Fatalf("forged new SSRC: %v, states %d", err, rx.n)
	}
}

// TestRTPGCMSSRCs: more SSRCs than the state array replaces the first
// added; each SSRC keeps its own index.
func TestRTPGCMSSRCs(t *testing.T) {
	g := newGCMPair(t, srtp.ProtectionProfileAeadAes128Gcm)
	tx, rx := g.pion(t), g.ours(t, true)
	var h rtp.Header
	for k := range rtpGCMSSRCs + 1 {
		for i := range 3 {
			enc, err := tx.EncryptRTP(nil, testPacket(t, uint32(100+k), uint16(10*k+i), i), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rx.decrypt(enc, &h); err != nil {
				t.Fatalf("ssrc %d packet %d: %v", 100+k, i, err)
			}
		}
	}
	if rx.state(100) != nil || rx.state(uint32(100+rtpGCMSSRCs)) == nil || rx.state(101).index != 12 {
		t.Fatalf("states: %+v", rx.states)
	}
}

func TestRTPGCMRefusesOtherProfiles(t *testing.T) {
	g := newGCMPair(t, srtp.ProtectionProfileAes128CmHmacSha1_80)
	if _, err := newRTPGCM(g.profile, g.key, g.salt, true); !errors.Is(err, ErrFastPath) {
		t.Fatalf("AES-CM profile: %v", err)
	}
	g = newGCMPair(t, srtp.ProtectionProfileAeadAes128Gcm)
	if _, err := newRTPGCM(g.profile, g.key[:8], g.salt, true); !errors.Is(err, ErrFastPath) {
		t.Fatalf("short key: %v", err)
	}
}

func TestRTPGCMAllocs(t *testing.T) {
	g := newGCMPair(t, srtp.ProtectionProfileAeadAes128Gcm)
	tx, rx := g.ours(t, false), g.ours(t, false)
	plain := testPacket(t, 7, 1, 0)
	hl := rtpHeaderLen(plain)
	out := make([]byte, hl, 1500)
	buf := make([]byte, 1500)
	var h rtp.Header
	if n := testing.AllocsPerRun(200, func() {
		copy(out, plain[:hl])
		enc := tx.encrypt(out[:hl], 7, 1, plain[hl:])
		n := copy(buf, enc)
		if _, err := rx.decrypt(buf[:n], &h); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per packet", n)
	}
}

func TestGuessIndex(t *testing.T) {
	for _, c := range []struct {
		highest uint64
		seq     uint16
		want    uint64
	}{
		{5, 6, 6},
		{5, 3, 3},
		{5, 65535, 65535}, // ROC 0 cannot go below
		{1<<16 | 10, 65530, 65530},
		{65530, 3, 1<<16 | 3},
		{40000, 100, 1<<16 | 100},
		{40000, 7000, 7000 | 1<<16},
		{40000, 7233, 7233},
		{3<<16 | 40000, 39000, 3<<16 | 39000},
	} {
		if got := guessIndex(c.highest, c.seq); got != c.want {
			t.Errorf("guessIndex(%d, %d) = %d, want %d", c.highest, c.seq, got, c.want)
		}
	}
}
