package opusfile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/oggopus"
	"github.com/callgw/callgw/internal/testkit/audiotest"
)

func tonePackets(t testing.TB) [][]byte {
	t.Helper()
	f, err := os.Open("../../testdata/audio/caller-440.ogg")
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

// pages parses an Ogg stream and checks every page's CRC, sequence and serial.
func pages(t *testing.T, b []byte, serial uint32) (granules []uint64, flags []byte) {
	t.Helper()
	for seq := uint32(0); len(b) > 0; seq++ {
		if len(b) < hdrLen || string(b[:4]) != "OggS" {
			t.Fatalf("page %d: bad header", seq)
		}
		n := int(b[26])
		size := hdrLen + n
		for _, l := range b[hdrLen : hdrLen+n] {
			size += int(l)
		}
		p := append([]byte(nil), b[:size]...)
		want := uint32(p[22]) | uint32(p[23])<<8 | uint32(p[24])<<16 | uint32(p[25])<<24
		if got := PageChecksum(p); got != want { // the CRC field itself is taken as zero
			t.Fatalf("page %d: crc %08x, want %08x", seq, got, want)
		}
		if s := uint32(p[14]) | uint32(p[15])<<8 | uint32(p[16])<<16 | uint32(p[17])<<24; s != serial {
			t.Fatalf("page %d: serial %d", seq, s)
		}
		if s := uint32(p[18]) | uint32(p[19])<<8 | uint32(p[20])<<16 | uint32(p[21])<<24; s != seq {
			t.Fatalf("page seq %d, want %d", s, seq)
		}
		var g uint64
		for i := 7; i >= 0; i-- {
			g = g<<8 | uint64(p[6+i])
		}
		granules = append(granules, g)
		flags = append(flags, p[5])
		b = b[size:]
	}
	return granules, flags
}

func TestToneWithGap(t *testing.T) {
	tone := tonePackets(t)
	cases := []struct {
		name     string
		first    int           // packets before the gap
		gap      time.Duration // RTP time skipped
		second   int           // packets after the gap
		late     int           // duplicates re-sent after the gap (dropped)
		padTo    time.Duration
		wantDur  time.Duration
		wantSil  int64
		wantDrop int64
	}{
		{"no gap", 100, 0, 0, 0, 0, 2 * time.Second, 0, 0},
		{"1 s gap", 100, time.Second, 100, 0, 0, 5 * time.Second, 50, 0},
		{"odd gap 1.0325 s", 50, 1032500 * time.Microsecond, 50, 0, 0, 3032500 * time.Microsecond, 51 + 1 + 1, 0},
		{"late packets dropped", 50, 0, 50, 3, 0, 2 * time.Second, 0, 3},
		{"padded to call end", 50, 0, 0, 0, 3 * time.Second, 3 * time.Second, 100, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, Config{Serial: 7})
			if err != nil {
				t.Fatal(err)
			}
			ts := uint32(0xFFFF0000) // wraps during the test
			i := 0
			for ; i < c.first; i++ {
				if err := w.WritePacket(tone[i], ts); err != nil {
					t.Fatal(err)
				}
				ts += 960
			}
			ts += uint32(c.gap * SampleRate / time.Second)
			for j := 0; j < c.second; j++ {
				if err := w.WritePacket(tone[i+j], ts); err != nil {
					t.Fatal(err)
				}
				ts += 960
			}
			for j := 0; j < c.late; j++ {
				if err := w.WritePacket(tone[j], ts-uint32(960*(j+1))); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.PadTo(c.padTo); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			st := w.Stats()
			if st.SilencePackets != c.wantSil || st.Dropped != c.wantDrop || st.Packets != int64(c.first+c.second) {
				t.Fatalf("stats %+v, want silence %d dropped %d", st, c.wantSil, c.wantDrop)
			}
			granules, flags := pages(t, buf.Bytes(), 7)
			if flags[0] != 0x02 || flags[len(flags)-1]&0x04 == 0 {
				t.Fatalf("flags %v: want BOS first, EOS last", flags)
			}
			wantSamples := uint64(c.wantDur * SampleRate / time.Second)
			if g := granules[len(granules)-1]; g != wantSamples {
				t.Fatalf("final granule %d, want %d (%v)", g, wantSamples, c.wantDur)
			}
			// Decode with libopus: the tone where packets were, silence in the gap,
			// and as many samples as the granule says.
			pkts, err := oggopus.ReadPackets(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			pcm, err := audiotest.DecodeAll(pkts)
			if err != nil {
				t.Fatal(err)
			}
			if uint64(len(pcm)) != wantSamples {
				t.Fatalf("decoded %d samples, want %d", len(pcm), wantSamples)
			}
			sec := func(a, b time.Duration) []int16 {
				return pcm[int(a*SampleRate/time.Second):int(b*SampleRate/time.Second)]
			}
			firstEnd := time.Duration(c.first) * 20 * time.Millisecond
			if ok, f := audiotest.HasTone(sec(100*time.Millisecond, firstEnd), 440, 15); !ok {
				t.Fatalf("before the gap: dominant %v Hz, want 440", f)
			}
			if c.gap > 0 {
				mid := sec(firstEnd+100*time.Millisecond, firstEnd+c.gap-20*time.Millisecond)
				if rms := audiotest.RMS(mid); rms > 0.001 {
					t.Fatalf("gap not silent: rms %v", rms)
				}
				if ok, f := audiotest.HasTone(sec(firstEnd+c.gap+100*time.Millisecond, c.wantDur), 440, 15); !ok {
					t.Fatalf("after the gap: dominant %v Hz, want 440", f)
				}
			}
			if c.padTo > 0 {
				if rms := audiotest.RMS(sec(firstEnd+100*time.Millisecond, c.padTo)); rms > 0.001 {
					t.Fatalf("padding not silent: rms %v", rms)
				}
			}
		})
	}
}

func TestMaxGapAndPaging(t *testing.T) {
	tone := tonePackets(t)
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Config{Serial: 1, MaxGap: 200 * time.Millisecond, PageDuration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_ = w.WritePacket(tone[0], 0)
	_ = w.WritePacket(tone[1], 48000*3600) // one hour later: capped at MaxGap
	_ = w.Close()
	if d := w.Duration(); d != 240*time.Millisecond {
		t.Fatalf("duration %v, want 240ms (20 + 200 capped + 20)", d)
	}
	granules, _ := pages(t, buf.Bytes(), 1)
	if len(granules) < 4 {
		t.Fatalf("%d pages: want audio split over pages of 100 ms", len(granules))
	}
}

func TestBadInput(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, Config{})
	before := buf.Len()
	for name, p := range map[string][]byte{"empty": nil, "code 3 no count": {0xFB}, "zero frames": {0xFB, 0x00}, "over 120 ms": {0x1B, 0x03}, "huge": append([]byte{0xF8}, make([]byte, MaxPacket)...)} {
		if err := w.WritePacket(p, 0); !errors.Is(err, ErrBadPacket) {
			t.Errorf("%s: %v, want ErrBadPacket", name, err)
		}
	}
	if w.Stats() != (Stats{}) || buf.Len() != before {
		t.Fatal("bad input changed the stream")
	}
	if _, err := NewWriter(io.Discard, Config{Channels: 3}); err == nil {
		t.Fatal("3 channels accepted")
	}
	_ = w.Close()
	if err := w.WritePacket([]byte{0xF8, 0xFF, 0xFE}, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

func TestSamples(t *testing.T) {
	for _, c := range []struct {
		pkt  []byte
		want uint32
	}{
		{[]byte{0xF8}, 960}, {[]byte{0xE0}, 120}, {[]byte{0x08}, 960}, {[]byte{0x18}, 2880},
		{[]byte{0x60}, 480}, {[]byte{0x68}, 960}, {[]byte{0x79}, 1920}, {[]byte{0xFB, 0x06}, 5760}, {[]byte{0x4B, 0x02}, 1920},
	} {
		if got, err := Samples(c.pkt); err != nil || got != c.want {
			t.Errorf("Samples(%x) = %d, %v; want %d", c.pkt, got, err, c.want)
		}
	}
}

func BenchmarkWritePacket(b *testing.B) {
	tone := tonePackets(b)
	w, err := NewWriter(io.Discard, Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	ts := uint32(0)
	for i := 0; b.Loop(); i++ {
		p := tone[i%len(tone)]
		if err := w.WritePacket(p, ts); err != nil {
			b.Fatal(err)
		}
		ts += 960
		if i%100 == 99 {
			ts += 960 * 5 // a 100 ms gap every 2 s
		}
	}
}
