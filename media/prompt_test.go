package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/oggopus"
	"github.com/callgw/callgw/internal/testkit/audiotest"
	"github.com/callgw/callgw/recording/opusfile"
)

// oggPage builds one Ogg page holding the given complete packets.
func oggPage(serial, seq uint32, flags byte, granule uint64, pkts ...[]byte) []byte {
	var lacing, body []byte
	for _, p := range pkts {
		n := len(p)
		for ; n >= 255; n -= 255 {
			lacing = append(lacing, 255)
		}
		lacing = append(lacing, byte(n))
		body = append(body, p...)
	}
	h := make([]byte, 27, 27+len(lacing)+len(body))
	copy(h, "OggS")
	h[5] = flags
	binary.LittleEndian.PutUint64(h[6:], granule)
	binary.LittleEndian.PutUint32(h[14:], serial)
	binary.LittleEndian.PutUint32(h[18:], seq)
	h[26] = byte(len(lacing))
	p := append(append(h, lacing...), body...)
	binary.LittleEndian.PutUint32(p[22:], opusfile.PageChecksum(p))
	return p
}

func opusHead(channels, family byte) []byte {
	h := make([]byte, 19)
	copy(h, "OpusHead")
	h[8], h[9] = 1, channels
	binary.LittleEndian.PutUint32(h[12:], 48000)
	h[18] = family
	return h
}

var opusTags = []byte("OpusTags\x06\x00\x00\x00callgw\x00\x00\x00\x00")

// oggOpus builds an Ogg Opus file: head and tags pages, then the audio
// packets, 50 to a page.
func oggOpus(head []byte, audio ...[]byte) []byte {
	f := oggPage(7, 0, 0x02, 0, head)
	f = append(f, oggPage(7, 1, 0, 0, opusTags)...)
	seq := uint32(2)
	for i := 0; i < len(audio); i += 50 {
		flags := byte(0)
		if i+50 >= len(audio) {
			flags = 0x04
		}
		f = append(f, oggPage(7, seq, flags, uint64(i)*960, audio[i:min(i+50, len(audio))]...)...)
		seq++
	}
	return f
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadPrompt(t *testing.T) {
	silence20 := []byte{0xf8, 0xff, 0xfe}
	tone := readFile(t, "testdata/tone-700.opus")
	many := make([][]byte, 10*60*50+1) // 10 min + 20 ms of 20 ms silence frames
	for i := range many {
		many[i] = silence20
	}
	corruptCRC := bytes.Clone(tone)
	corruptCRC[len(corruptCRC)-10] ^= 0xff
	// the second page (OpusTags) removed: a sequence gap
	firstLen := 27 + int(tone[26]) + int(tone[27])
	secondLen := 27 + int(tone[firstLen+26])
	for _, l := range tone[firstLen+27 : firstLen+27+int(tone[firstLen+26])] {
		secondLen += int(l)
	}
	thirdLen := 27 + int(tone[firstLen+secondLen+26])
	for _, l := range tone[firstLen+secondLen+27 : firstLen+secondLen+27+int(tone[firstLen+secondLen+26])] {
		thirdLen += int(l)
	}
	missingPage := append(bytes.Clone(tone[:firstLen+secondLen]), tone[firstLen+secondLen+thirdLen:]...)
	twoStreams := append(bytes.Clone(tone), oggPage(99, 0, 0x02, 0, opusHead(1, 0))...)

	// opusenc pads the tail: 1 s of tone is 51 packets of 20 ms.
	for _, tc := range []struct {
		name    string
		data    []byte
		wantErr string // "" = valid
		wantDur time.Duration
		wantPkt int
	}{
		{name: "20 ms frames", data: tone, wantDur: 1020 * time.Millisecond, wantPkt: 51},
		// 60 ms packets of three 20 ms CELT frames: split
		{name: "60 ms frames", data: readFile(t, "testdata/tone-700-60ms.opus"), wantDur: 1020 * time.Millisecond, wantPkt: 51},
		// 10 ms packets: joined in pairs, the odd last one alone
		{name: "10 ms frames", data: readFile(t, "testdata/tone-700-10ms.opus"), wantDur: 1010 * time.Millisecond, wantPkt: 51},
		// one 60 ms SILK frame cannot be split; a 20 ms code-1 packet stays
		{name: "60 ms SILK frame", data: oggOpus(opusHead(1, 0), []byte{0x18, 1, 2, 3}, []byte{0xf1, 1, 2}), wantDur: 80 * time.Millisecond, wantPkt: 2},
		// 10 ms frames of two configurations are not joined
		{name: "10 ms frames, config changes", data: oggOpus(opusHead(1, 0), []byte{0xf0, 1}, []byte{0xd0, 2}, []byte{0xf0, 3}), wantDur: 30 * time.Millisecond, wantPkt: 3},
		{name: "stereo head, mono packets", data: oggOpus(opusHead(2, 0), silence20, silence20), wantDur: 40 * time.Millisecond, wantPkt: 2},
		{name: "exactly 10 min", data: oggOpus(opusHead(1, 0), many[1:]...), wantDur: 10 * time.Minute, wantPkt: 30000},
		{name: "empty file", data: nil, wantErr: "empty file"},
		{name: "not ogg (WAV)", data: []byte("RIFF\x24\x00\x00\x00WAVEfmt "), wantErr: "not an Ogg file"},
		{name: "not opus (vorbis)", data: oggPage(1, 0, 0x02, 0, []byte("\x01vorbis\x00\x00\x00\x00")), wantErr: "not Opus"},
		{name: "no audio packets", data: oggOpus(opusHead(1, 0)), wantErr: "empty: no audio packets"},
		{name: "no OpusTags", data: oggPage(1, 0, 0x02|0x04, 0, opusHead(1, 0), silence20), wantErr: "no OpusTags"},
		{name: "too long", data: oggOpus(opusHead(1, 0), many...), wantErr: "too long"},
		{name: "corrupt crc", data: corruptCRC, wantErr: "fails its CRC"},
		{name: "truncated", data: tone[:len(tone)-100], wantErr: "truncated"},
		{name: "missing page", data: missingPage, wantErr: "missing"},
		{name: "two logical streams", data: twoStreams, wantErr: "more than one logical stream"},
		{name: "three channels", data: oggOpus(opusHead(3, 0), silence20), wantErr: "3 channels"},
		{name: "surround mapping", data: oggOpus(opusHead(2, 1), silence20), wantErr: "mapping family 1"},
		{name: "120 ms packet", data: oggOpus(opusHead(1, 0), []byte{0x19, 0, 0}), wantErr: "longer than 60 ms"},
		{name: "malformed code 1", data: oggOpus(opusHead(1, 0), []byte{0xf9, 1, 2, 3}), wantErr: "code 1"},
		{name: "malformed code 3", data: oggOpus(opusHead(1, 0), []byte{0xfb, 0x83, 200, 1}), wantErr: "code 3"},
		{name: "packet too big", data: oggOpus(opusHead(1, 0), append([]byte{0xf8}, make([]byte, 1250)...)), wantErr: "more than 1200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := LoadPrompt(tc.name, bytes.NewReader(tc.data))
			if tc.wantErr != "" {
				if !errors.Is(err, ErrBadPrompt) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrBadPrompt saying %q", err, tc.wantErr)
				}
				if p != nil {
					t.Fatal("prompt returned with an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Name() != tc.name || p.Duration() != tc.wantDur || p.Packets() != tc.wantPkt {
				t.Fatalf("name %q duration %v packets %d, want %q %v %d", p.Name(), p.Duration(), p.Packets(), tc.name, tc.wantDur, tc.wantPkt)
			}
		})
	}
}

// Regrouped prompts decode exactly as the file's own packets: same
// samples, bit for bit (libopus).
func TestRepacketizeDecodesTheSame(t *testing.T) {
	for _, file := range []string{"tone-700-10ms.opus", "tone-700-60ms.opus", "tone-700.opus"} {
		t.Run(file, func(t *testing.T) {
			f, err := os.Open("testdata/" + file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			orig, err := oggopus.ReadPackets(f)
			if err != nil {
				t.Fatal(err)
			}
			p := loadPrompt(t, file)
			for i, n := range p.samples[:len(p.samples)-1] {
				if n != opusFrameTicks {
					t.Fatalf("packet %d: %d samples, want 20 ms", i, n)
				}
			}
			want, err := audiotest.DecodeAll(orig)
			if err != nil {
				t.Fatal(err)
			}
			got, err := audiotest.DecodeAll(p.pkts)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d samples, want %d", len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("sample %d: %d, want %d", i, got[i], want[i])
				}
			}
		})
	}
}

func TestLoadPromptFile(t *testing.T) {
	p, err := LoadPromptFile("testdata/tone-700.opus")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "tone-700" || p.Channels() != 1 {
		t.Fatalf("name %q channels %d", p.Name(), p.Channels())
	}
	pcm, err := audiotest.DecodeAll(p.pkts)
	if err != nil {
		t.Fatal(err)
	}
	if ok, f := audiotest.HasTone(pcm[4800:], 700, 15); !ok {
		t.Fatalf("fixture is %v Hz, want 700", f)
	}
	if _, err := LoadPromptFile("testdata/nope.opus"); !errors.Is(err, ErrBadPrompt) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// The built-in prompts are valid, of sensible lengths, and decode to
// speech (broadband energy) or, for "hold", to the melody's notes.
func TestBuiltinPrompts(t *testing.T) {
	total := 0
	for _, name := range BuiltinPromptNames() {
		t.Run(name, func(t *testing.T) {
			p, err := BuiltinPrompt(name)
			if err != nil {
				t.Fatal(err)
			}
			if d := p.Duration(); d < time.Second || d > 12*time.Second {
				t.Fatalf("duration %v", d)
			}
			for i, n := range p.samples {
				if n != opusFrameTicks {
					t.Fatalf("packet %d lasts %d samples, want 20 ms frames", i, n)
				}
			}
			for _, b := range p.pkts {
				total += len(b)
			}
			pcm, err := audiotest.DecodeAll(p.pkts)
			if err != nil {
				t.Fatal(err)
			}
			var peak int16
			for _, s := range pcm {
				peak = max(peak, s, -s)
			}
			if peak < 3000 {
				t.Fatalf("peak %d: too quiet", peak)
			}
			if name != "hold" {
				return
			}
			// hold: every 250 ms note is one of the melody's (or its lower octave).
			notes := []float64{261.63, 293.66, 329.63, 349.23, 392, 440, 493.88, 523.25, 587.33, 659.25, 698.46}
			for i := 0; i+12000 <= len(pcm); i += 12000 {
				win := pcm[i+2000 : i+9000]
				f, _ := audiotest.DominantFrequency(win)
				ok := false
				for _, n := range notes {
					if d := f - n; d > -15 && d < 15 || f-n/2 > -15 && f-n/2 < 15 {
						ok = true
					}
				}
				if !ok {
					t.Fatalf("note %d: dominant %v Hz is not in the melody", i/12000, f)
				}
			}
		})
	}
	if total > 300<<10 {
		t.Fatalf("built-in prompts weigh %d bytes", total)
	}
	if _, err := BuiltinPrompt("nope"); !errors.Is(err, ErrUnknownPrompt) {
		t.Fatalf("unknown: %v", err)
	}
}

func FuzzLoadPrompt(f *testing.F) {
	f.Add(oggOpus(opusHead(1, 0), []byte{0xf8, 0xff, 0xfe}))
	f.Add([]byte("OggS"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := LoadPrompt("fuzz", bytes.NewReader(data))
		if (p == nil) == (err == nil) {
			t.Fatalf("prompt %v with err %v", p, err)
		}
		if err != nil && !errors.Is(err, ErrBadPrompt) {
			t.Fatalf("error not ErrBadPrompt: %v", err)
		}
	})
}

// FuzzOpusFrames: any packet the framing check accepts, rebuilt from its
// frames as the repacketizer does, parses back to the same frames.
func FuzzOpusFrames(f *testing.F) {
	for _, p := range [][]byte{{0xf8, 0xff, 0xfe}, {0xf9, 1, 2}, {0xfa, 1, 9, 8}, {0xfb, 0x83, 1, 2, 3, 4, 5},
		{0xfb, 0x43, 1, 7, 8, 9, 0}, {0xfb, 0x82, 253, 70}} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		frames, err := opusFrames(pkt, nil)
		if err != nil {
			return
		}
		rebuilt := buildOpusPacket(pkt[0], frames)
		again, err := opusFrames(rebuilt, nil)
		if err != nil {
			t.Fatalf("rebuilt packet %x rejected: %v", rebuilt, err)
		}
		if len(again) != len(frames) {
			t.Fatalf("%d frames, rebuilt %d", len(frames), len(again))
		}
		for i := range frames {
			if !bytes.Equal(frames[i], again[i]) {
				t.Fatalf("frame %d differs", i)
			}
		}
	})
}
