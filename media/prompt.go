package media

import (
	"bytes"
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/callgw/callgw/recording/opusfile"
)

const (
	// MaxPromptDuration is the longest prompt LoadPrompt accepts.
	MaxPromptDuration = 10 * time.Minute
	// maxPromptBytes bounds what LoadPrompt reads (10 min at 510 kb/s is 38 MB).
	maxPromptBytes = 40 << 20
	// maxPromptPacket: larger Opus packets would not fit one RTP datagram
	// with SRTP and the headers.
	maxPromptPacket = 1200
	// maxPromptPacketSamples: packets up to 60 ms (Opus allows 120 ms); a
	// longer one would leave a gap longer than Meta tolerates between
	// datagrams.
	maxPromptPacketSamples = 3 * opusFrameTicks
)

// Prompt is a validated Ogg Opus recording ready to be played into calls
// without transcoding: its Opus packets and their durations. It is
// immutable and shared read-only by every bridge that plays it.
type Prompt struct {
	name     string
	pkts     [][]byte // sub-slices of one backing array
	samples  []uint16 // 48 kHz samples of each packet
	total    uint64   // samples
	channels int
}

// Name is the name given to LoadPrompt (the file name, the built-in name).
func (p *Prompt) Name() string { return p.name }

// Duration is the prompt's length (the sum of its packets' durations).
func (p *Prompt) Duration() time.Duration {
	return time.Duration(p.total) * time.Second / 48000
}

// Packets is the number of Opus packets.
func (p *Prompt) Packets() int { return len(p.pkts) }

// Channels is the channel count from the OpusHead (1 or 2).
func (p *Prompt) Channels() int { return p.channels }

func badPrompt(name, format string, args ...any) error {
	return fmt.Errorf("%w %q: %s", ErrBadPrompt, name, fmt.Sprintf(format, args...))
}

// LoadPrompt reads an Ogg Opus stream (RFC 7845) and checks it can be
// played as is into a call: Ogg pages intact (capture pattern, version,
// CRC, page sequence), one logical stream, an OpusHead (version 1, 1 or 2
// channels, mapping family 0) and OpusTags, at least one audio packet, each
// packet well formed (RFC 6716 §3: TOC, frame count and lengths) and at
// most 60 ms and 1200 bytes, the whole at most MaxPromptDuration. Errors
// wrap ErrBadPrompt and say why.
//
// The frames are then regrouped into 20 ms packets without decoding (the
// pacer sends one per tick): shorter frames (2.5, 5, 10 ms) of one
// configuration are joined, packets of several 20 ms frames are split. A
// single SILK frame of 40 or 60 ms stays whole; the player sends it when
// its time comes and advances the RTP timestamp by its samples. Opus
// always decodes at 48 kHz, the RTP clock; the OpusHead's input rate is
// informational.
func LoadPrompt(name string, r io.Reader) (*Prompt, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxPromptBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w %q: read: %w", ErrBadPrompt, name, err)
	}
	if len(data) > maxPromptBytes {
		return nil, badPrompt(name, "larger than %d MB", maxPromptBytes>>20)
	}
	return parsePrompt(name, data)
}

// LoadPromptFile is LoadPrompt on a file; the prompt is named after the
// file (without directory and extension).
func LoadPromptFile(file string) (*Prompt, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPrompt, err)
	}
	defer f.Close()
	base := path.Base(strings.ReplaceAll(file, "\\", "/"))
	return LoadPrompt(strings.TrimSuffix(base, path.Ext(base)), f)
}

// oggPackets reads the packets of an Ogg stream, checking its pages.
func oggPackets(name string, data []byte) ([][]byte, error) {
	if len(data) == 0 {
		return nil, badPrompt(name, "empty file")
	}
	if !bytes.HasPrefix(data, []byte("OggS")) {
		return nil, badPrompt(name, "not an Ogg file")
	}
	var (
		pkts    [][]byte
		partial []byte // a packet continued across pages (copied)
		cont    bool
		serial  uint32
		seq     uint32
		eos     bool
	)
	for page := 0; len(data) > 0; page++ {
		if len(data) < 27 || !bytes.Equal(data[:4], []byte("OggS")) {
			return nil, badPrompt(name, "corrupt: page %d has no Ogg capture pattern", page)
		}
		if data[4] != 0 {
			return nil, badPrompt(name, "corrupt: page %d has Ogg version %d", page, data[4])
		}
		flags := data[5]
		nseg := int(data[26])
		if len(data) < 27+nseg {
			return nil, badPrompt(name, "corrupt: page %d truncated", page)
		}
		size := 27 + nseg
		for _, l := range data[27 : 27+nseg] {
			size += int(l)
		}
		if len(data) < size {
			return nil, badPrompt(name, "corrupt: page %d truncated", page)
		}
		p := data[:size]
		if want := binary.LittleEndian.Uint32(p[22:]); opusfile.PageChecksum(p) != want {
			return nil, badPrompt(name, "corrupt: page %d fails its CRC", page)
		}
		s, n := binary.LittleEndian.Uint32(p[14:]), binary.LittleEndian.Uint32(p[18:])
		switch {
		case page == 0:
			if flags&0x02 == 0 {
				return nil, badPrompt(name, "corrupt: first page is not a beginning of stream")
			}
			serial = s
		case s != serial:
			return nil, badPrompt(name, "more than one logical stream (chained or multiplexed Ogg)")
		case eos:
			return nil, badPrompt(name, "corrupt: pages after the end of stream")
		case n != seq+1:
			return nil, badPrompt(name, "corrupt: page %d missing (sequence %d after %d)", page, n, seq)
		}
		seq = n
		eos = flags&0x04 != 0
		if (flags&0x01 != 0) != cont {
			return nil, badPrompt(name, "corrupt: page %d continuation flag does not match", page)
		}
		body := p[27+nseg:]
		off := 0
		for _, l := range p[27 : 27+nseg] {
			seg := body[off : off+int(l)]
			off += int(l)
			if l == 255 {
				partial = append(partial, seg...)
				cont = true
				continue
			}
			if cont {
				pkts = append(pkts, append(partial, seg...))
				partial, cont = nil, false
			} else {
				pkts = append(pkts, seg[:len(seg):len(seg)])
			}
		}
		data = data[size:]
	}
	if cont {
		return nil, badPrompt(name, "corrupt: last packet truncated")
	}
	return pkts, nil
}

func parsePrompt(name string, data []byte) (*Prompt, error) {
	pkts, err := oggPackets(name, data)
	if err != nil {
		return nil, err
	}
	if len(pkts) == 0 || !bytes.HasPrefix(pkts[0], []byte("OpusHead")) {
		return nil, badPrompt(name, "not Opus (no OpusHead)")
	}
	head := pkts[0]
	if len(head) < 19 {
		return nil, badPrompt(name, "corrupt: OpusHead of %d bytes", len(head))
	}
	if head[8]>>4 != 0 {
		return nil, badPrompt(name, "unsupported OpusHead version %d", head[8])
	}
	ch := int(head[9])
	if ch != 1 && ch != 2 {
		return nil, badPrompt(name, "%d channels: want mono or stereo", ch)
	}
	if head[18] != 0 {
		return nil, badPrompt(name, "channel mapping family %d: want 0 (mono or stereo)", head[18])
	}
	if len(pkts) < 2 || !bytes.HasPrefix(pkts[1], []byte("OpusTags")) {
		return nil, badPrompt(name, "corrupt: no OpusTags after the OpusHead")
	}
	audio := pkts[2:]
	if len(audio) == 0 {
		return nil, badPrompt(name, "empty: no audio packets")
	}
	// Check every packet, then regroup the frames into 20 ms packets.
	var rp repacketizer
	var frames [][]byte
	for i, a := range audio {
		if frames, err = opusFrames(a, frames[:0]); err != nil {
			return nil, badPrompt(name, "corrupt: audio packet %d: %v", i, err)
		}
		if n := opusfile.FrameSamples(a[0]) * uint32(len(frames)); n > maxPromptPacketSamples {
			return nil, badPrompt(name, "audio packet %d lasts %v: longer than 60 ms", i,
				time.Duration(n)*time.Second/48000)
		}
		if len(a) > maxPromptPacket {
			return nil, badPrompt(name, "audio packet %d has %d bytes: more than %d (bitrate too high)", i, len(a), maxPromptPacket)
		}
		rp.add(a, frames)
	}
	rp.flush()
	// One backing array for all packets: shared read-only by every player.
	size := 0
	for _, a := range rp.out {
		size += len(a)
	}
	buf := make([]byte, 0, size)
	p := &Prompt{name: name, pkts: make([][]byte, len(rp.out)), samples: rp.samples, channels: ch}
	for i, a := range rp.out {
		if len(a) > maxPromptPacket {
			return nil, badPrompt(name, "regrouped packet %d has %d bytes: more than %d (bitrate too high)", i, len(a), maxPromptPacket)
		}
		start := len(buf)
		buf = append(buf, a...)
		p.pkts[i] = buf[start:len(buf):len(buf)]
		p.total += uint64(rp.samples[i])
	}
	if p.Duration() > MaxPromptDuration {
		return nil, badPrompt(name, "too long: %v, more than %v", p.Duration().Round(time.Second), MaxPromptDuration)
	}
	return p, nil
}

var errOpusPacket = errors.New("malformed opus packet")

// opusPacketSamples checks an Opus packet's framing and returns its
// duration in 48 kHz samples.
func opusPacketSamples(pkt []byte) (uint32, error) {
	frames, err := opusFrames(pkt, nil)
	if err != nil {
		return 0, err
	}
	return opusfile.FrameSamples(pkt[0]) * uint32(len(frames)), nil
}

// opusFrames checks an Opus packet's framing (RFC 6716 §3.1-3.2, rules
// R1-R7) and appends its frames (sub-slices of pkt) to dst.
func opusFrames(pkt []byte, dst [][]byte) ([][]byte, error) {
	if len(pkt) == 0 {
		return dst, fmt.Errorf("%w: empty", errOpusPacket)
	}
	const maxFrame = 1275
	toc, rest := pkt[0], pkt[1:]
	// frameLen reads a 1- or 2-byte frame length.
	frameLen := func(b []byte) (int, int, bool) {
		switch {
		case len(b) == 0:
			return 0, 0, false
		case b[0] < 252:
			return int(b[0]), 1, true
		case len(b) < 2:
			return 0, 0, false
		}
		return int(b[1])*4 + int(b[0]), 2, true
	}
	switch toc & 3 {
	case 0:
		if len(rest) > maxFrame {
			return dst, fmt.Errorf("%w: frame of %d bytes", errOpusPacket, len(rest))
		}
		return append(dst, rest), nil
	case 1:
		if len(rest)%2 != 0 || len(rest)/2 > maxFrame {
			return dst, fmt.Errorf("%w: code 1 with %d bytes", errOpusPacket, len(rest))
		}
		h := len(rest) / 2
		return append(dst, rest[:h], rest[h:]), nil
	case 2:
		l, n, ok := frameLen(rest)
		if !ok || l > len(rest)-n || l > maxFrame || len(rest)-n-l > maxFrame {
			return dst, fmt.Errorf("%w: code 2 frame lengths", errOpusPacket)
		}
		rest = rest[n:]
		return append(dst, rest[:l], rest[l:]), nil
	}
	if len(rest) == 0 {
		return dst, fmt.Errorf("%w: code 3 without frame count", errOpusPacket)
	}
	fc := rest[0]
	rest = rest[1:]
	m := int(fc & 0x3f)
	if m == 0 || opusfile.FrameSamples(toc)*uint32(m) > 5760 {
		return dst, fmt.Errorf("%w: code 3 with %d frames", errOpusPacket, m)
	}
	if fc&0x40 != 0 { // padding
		pad := 0
		for {
			if len(rest) == 0 {
				return dst, fmt.Errorf("%w: padding length", errOpusPacket)
			}
			b := rest[0]
			rest = rest[1:]
			if b == 255 {
				pad += 254
				continue
			}
			pad += int(b)
			break
		}
		if pad > len(rest) {
			return dst, fmt.Errorf("%w: padding longer than the packet", errOpusPacket)
		}
		rest = rest[:len(rest)-pad]
	}
	if fc&0x80 == 0 { // CBR: equal frames
		if len(rest)%m != 0 || len(rest)/m > maxFrame {
			return dst, fmt.Errorf("%w: code 3 CBR with %d bytes for %d frames", errOpusPacket, len(rest), m)
		}
		l := len(rest) / m
		for k := range m {
			dst = append(dst, rest[k*l:(k+1)*l])
		}
		return dst, nil
	}
	// VBR: M-1 lengths, the last frame takes the rest
	var lens [48]int
	total := 0
	for k := range m - 1 {
		l, n, ok := frameLen(rest)
		if !ok || l > maxFrame {
			return dst, fmt.Errorf("%w: code 3 frame lengths", errOpusPacket)
		}
		rest = rest[n:]
		lens[k] = l
		total += l
	}
	if total > len(rest) || len(rest)-total > maxFrame {
		return dst, fmt.Errorf("%w: code 3 frames longer than the packet", errOpusPacket)
	}
	lens[m-1] = len(rest) - total
	for k := range m {
		dst = append(dst, rest[:lens[k]])
		rest = rest[lens[k]:]
	}
	return dst, nil
}

// repacketizer regroups Opus frames into 20 ms packets without decoding
// (what libopus' opus_repacketizer does): frames shorter than 20 ms of the
// same configuration are joined (code 0 for one frame, code 3 VBR for
// several), packets of several 20 ms frames are split, and frames of 20 ms
// or longer (SILK 40/60 ms) stay as they are. A run of short frames broken
// by a configuration change (or the end) leaves as a shorter packet.
type repacketizer struct {
	out     [][]byte
	samples []uint16
	toc     byte // pending frames' TOC (code bits cleared)
	pending [][]byte
	n       uint32 // pending samples
}

func (r *repacketizer) emit(pkt []byte, n uint32) {
	r.out = append(r.out, pkt)
	r.samples = append(r.samples, uint16(n))
}

// build makes one packet of frames with TOC toc.
func buildOpusPacket(toc byte, frames [][]byte) []byte {
	toc &^= 3
	if len(frames) == 1 {
		return append([]byte{toc}, frames[0]...)
	}
	p := []byte{toc | 3, 0x80 | byte(len(frames))}
	for _, f := range frames[:len(frames)-1] {
		if l := len(f); l < 252 {
			p = append(p, byte(l))
		} else {
			b0 := 252 + byte(l&3)
			p = append(p, b0, byte((l-int(b0))>>2))
		}
	}
	for _, f := range frames {
		p = append(p, f...)
	}
	return p
}

func (r *repacketizer) flush() {
	if len(r.pending) > 0 {
		r.emit(buildOpusPacket(r.toc, r.pending), r.n)
	}
	r.pending, r.n = nil, 0
}

// add takes one validated packet and its frames.
func (r *repacketizer) add(pkt []byte, frames [][]byte) {
	toc, per := pkt[0], opusfile.FrameSamples(pkt[0])
	total := per * uint32(len(frames))
	switch {
	case total == opusFrameTicks && len(r.pending) == 0:
		r.emit(pkt, total) // already a 20 ms packet
	case per >= opusFrameTicks && len(frames) == 1:
		r.flush()
		r.emit(pkt, total) // one long SILK frame: cannot be split
	case per >= opusFrameTicks:
		r.flush()
		for _, f := range frames {
			r.emit(buildOpusPacket(toc, [][]byte{f}), per)
		}
	default:
		for _, f := range frames {
			if len(r.pending) > 0 && r.toc != toc&^3 {
				r.flush()
			}
			r.toc = toc &^ 3
			r.pending = append(r.pending, f)
			if r.n += per; r.n >= opusFrameTicks {
				r.flush()
			}
		}
	}
}

//go:embed prompts/*.opus
var builtinFS embed.FS

var builtinNames = []string{"hold", "queue", "welcome", "menu_example", "transfer", "goodbye",
	"consent_notice", "consent_explicit", "unavailable"}

// BuiltinPromptNames returns the names of the prompts shipped in the binary
// (media/prompts, made by make.sh: speech by espeak-ng, the hold music a
// tonal loop).
func BuiltinPromptNames() []string { return slices.Clone(builtinNames) }

// builtinPrompts parses every embedded prompt once.
var builtinPrompts = sync.OnceValues(func() (map[string]*Prompt, error) {
	m := make(map[string]*Prompt, len(builtinNames))
	for _, name := range builtinNames {
		data, err := fs.ReadFile(builtinFS, "prompts/"+name+".opus")
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %w", ErrUnknownPrompt, name, err)
		}
		p, err := parsePrompt(name, data)
		if err != nil {
			return nil, err
		}
		m[name] = p
	}
	return m, nil
})

// BuiltinPrompt returns an embedded default prompt (BuiltinPromptNames),
// parsed once and shared; ErrUnknownPrompt for any other name.
func BuiltinPrompt(name string) (*Prompt, error) {
	m, err := builtinPrompts()
	if err != nil {
		return nil, err
	}
	p, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownPrompt, name)
	}
	return p, nil
}
