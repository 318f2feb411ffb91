// Package opusfile writes Opus packets (RTP payloads, as received) into an
// Ogg Opus stream (RFC 7845) without transcoding. It streams pages to an
// io.Writer with bounded memory, fills timestamp gaps with Opus silence
// frames so the file stays in step with the RTP clock (wall time), and does
// not allocate per packet. The media engine uses one Writer per direction.
package opusfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

var (
	// ErrBadPacket is returned for an empty or malformed Opus packet; the
	// stream is unchanged.
	ErrBadPacket = errors.New("opusfile: bad opus packet")
	// ErrClosed is returned by writes after Close.
	ErrClosed = errors.New("opusfile: writer closed")
)

const (
	// SampleRate is the Ogg Opus granule rate and the Opus RTP clock rate.
	SampleRate = 48000
	// MaxPacket is the largest packet accepted (Opus allows 1275 bytes per
	// frame, 120 ms at most per packet).
	MaxPacket = 8000

	maxSegs = 255
	maxBody = maxSegs * 255
	hdrLen  = 27
)

// Config tunes a Writer; the zero value is usable.
type Config struct {
	// Serial is the Ogg logical stream serial number (pick one per file).
	Serial uint32
	// Channels announced in OpusHead: 1 (default) or 2.
	Channels int
	// PageDuration is how much audio a page holds before it is written out
	// (default 1 s): the most audio lost if the process dies mid-call.
	PageDuration time.Duration
	// MaxGap caps the silence inserted for one timestamp jump (default 10
	// min); a longer jump is treated as a stream restart and filled only up
	// to MaxGap.
	MaxGap time.Duration
	// Vendor goes into OpusTags (default "callgw").
	Vendor string
}

// Stats counts what a Writer did.
type Stats struct {
	Packets        int64 // audio packets written as received
	SilencePackets int64 // silence packets inserted for gaps and padding
	Dropped        int64 // late or duplicate packets (timestamp behind the stream)
	Samples        uint64
}

// Writer writes one Ogg Opus logical stream. It is not safe for concurrent use.
type Writer struct {
	w       io.Writer
	cfg     Config
	seq     uint32
	granule uint64 // samples up to the end of the last packet added
	started bool
	next    uint32 // RTP timestamp expected for the next packet
	maxGap  uint32
	pageMax uint64

	page      []byte // header + lacing are built in front of body at flush
	lacing    [maxSegs]byte
	nseg      int
	body      []byte
	pageStart uint64
	pagePkts  int
	closed    bool
	err       error
	stats     Stats
}

// Silence frames: CELT-only fullband, mono, one frame, with the CELT silence
// flag set (0xFF 0xFE). TOC configs 31, 30, 29, 28 = 20, 10, 5, 2.5 ms.
var silenceTOC = [...]struct {
	toc     byte
	samples uint32
}{{0xF8, 960}, {0xF0, 480}, {0xE8, 240}, {0xE0, 120}}

// NewWriter writes the OpusHead and OpusTags pages to w and returns a Writer.
func NewWriter(w io.Writer, cfg Config) (*Writer, error) {
	if cfg.Channels == 0 {
		cfg.Channels = 1
	}
	if cfg.Channels != 1 && cfg.Channels != 2 {
		return nil, fmt.Errorf("opusfile: channels %d: want 1 or 2", cfg.Channels)
	}
	if cfg.PageDuration <= 0 {
		cfg.PageDuration = time.Second
	}
	if cfg.MaxGap <= 0 {
		cfg.MaxGap = 10 * time.Minute
	}
	if cfg.Vendor == "" {
		cfg.Vendor = "callgw"
	}
	wr := &Writer{w: w, cfg: cfg,
		maxGap:  uint32(cfg.MaxGap * SampleRate / time.Second),
		pageMax: uint64(cfg.PageDuration * SampleRate / time.Second),
		page:    make([]byte, hdrLen+maxSegs+maxBody)}
	wr.body = wr.page[hdrLen+maxSegs : hdrLen+maxSegs]

	head := make([]byte, 19)
	copy(head, "OpusHead")
	head[8] = 1
	head[9] = byte(cfg.Channels)
	binary.LittleEndian.PutUint16(head[10:], 0) // pre-skip 0: mid-stream packets, keep wall time exact
	binary.LittleEndian.PutUint32(head[12:], SampleRate)
	if err := wr.headerPage(head, 0x02); err != nil {
		return nil, err
	}
	tags := make([]byte, 0, 8+4+len(cfg.Vendor)+4)
	tags = append(tags, "OpusTags"...)
	tags = binary.LittleEndian.AppendUint32(tags, uint32(len(cfg.Vendor)))
	tags = append(tags, cfg.Vendor...)
	tags = binary.LittleEndian.AppendUint32(tags, 0)
	if err := wr.headerPage(tags, 0); err != nil {
		return nil, err
	}
	return wr, nil
}

func (w *Writer) headerPage(pkt []byte, flags byte) error {
	w.addSegments(pkt)
	return w.flush(flags)
}

// Stats returns the counters so far.
func (w *Writer) Stats() Stats { return w.stats }

// Duration is the audio written so far (received packets plus silence).
func (w *Writer) Duration() time.Duration {
	return time.Duration(w.granule) * time.Second / SampleRate
}

// WritePacket appends one Opus packet whose first sample has RTP timestamp
// ts (48 kHz clock). A jump forward is filled with silence first; a packet
// behind the stream (late, duplicate) is dropped and counted.
func (w *Writer) WritePacket(pkt []byte, ts uint32) error {
	if w.closed {
		return ErrClosed
	}
	if w.err != nil {
		return w.err
	}
	n, err := Samples(pkt)
	if err != nil {
		return err
	}
	if len(pkt) > MaxPacket {
		return fmt.Errorf("%w: %d bytes", ErrBadPacket, len(pkt))
	}
	if !w.started {
		w.started, w.next = true, ts
	}
	switch d := int32(ts - w.next); {
	case d < 0:
		w.stats.Dropped++
		return nil
	case d > 0:
		gap := uint32(d)
		if gap > w.maxGap {
			gap = w.maxGap
		}
		if err := w.silence(uint64(gap)); err != nil {
			return err
		}
	}
	w.next = ts + n
	w.stats.Packets++
	return w.add(pkt, n)
}

// PadTo appends silence until the stream lasts d, e.g. at call end with the
// call's duration so both directions' files end together. No-op if longer.
func (w *Writer) PadTo(d time.Duration) error {
	if w.closed {
		return ErrClosed
	}
	want := uint64(d * SampleRate / time.Second)
	if want <= w.granule {
		return nil
	}
	gap := want - w.granule
	w.next += uint32(gap)
	return w.silence(gap)
}

// silence appends gap samples of silence frames (the remainder below 2.5 ms
// cannot be expressed and is dropped).
func (w *Writer) silence(gap uint64) error {
	var frame [3]byte
	frame[1], frame[2] = 0xFF, 0xFE
	for _, s := range silenceTOC {
		for gap >= uint64(s.samples) {
			frame[0] = s.toc
			if err := w.add(frame[:], s.samples); err != nil {
				return err
			}
			w.stats.SilencePackets++
			gap -= uint64(s.samples)
		}
	}
	return nil
}

func (w *Writer) add(pkt []byte, samples uint32) error {
	segs := len(pkt)/255 + 1
	if w.nseg+segs > maxSegs || len(w.body)+len(pkt) > maxBody {
		if err := w.flush(0); err != nil {
			return err
		}
	}
	w.addSegments(pkt)
	w.granule += uint64(samples)
	w.stats.Samples = w.granule
	w.pagePkts++
	if w.granule-w.pageStart >= w.pageMax {
		return w.flush(0)
	}
	return nil
}

func (w *Writer) addSegments(pkt []byte) {
	for l := len(pkt); ; l -= 255 {
		if l >= 255 {
			w.lacing[w.nseg] = 255
			w.nseg++
			continue
		}
		w.lacing[w.nseg] = byte(l)
		w.nseg++
		break
	}
	w.body = append(w.body, pkt...)
}

// Flush writes out the page being filled, if any.
func (w *Writer) Flush() error {
	if w.closed {
		return ErrClosed
	}
	if w.nseg == 0 {
		return nil
	}
	return w.flush(0)
}

func (w *Writer) flush(flags byte) error {
	if w.err != nil {
		return w.err
	}
	start := hdrLen + maxSegs - w.nseg - hdrLen
	p := w.page[start : hdrLen+maxSegs+len(w.body)]
	copy(p, "OggS")
	p[4] = 0
	p[5] = flags
	binary.LittleEndian.PutUint64(p[6:], w.granule)
	binary.LittleEndian.PutUint32(p[14:], w.cfg.Serial)
	binary.LittleEndian.PutUint32(p[18:], w.seq)
	binary.LittleEndian.PutUint32(p[22:], 0)
	p[26] = byte(w.nseg)
	copy(p[hdrLen:], w.lacing[:w.nseg])
	binary.LittleEndian.PutUint32(p[22:], PageChecksum(p))
	w.seq++
	w.nseg, w.pagePkts = 0, 0
	w.body = w.body[:0]
	w.pageStart = w.granule
	if _, err := w.w.Write(p); err != nil {
		w.err = fmt.Errorf("opusfile: write: %w", err)
		return w.err
	}
	return nil
}

// Close writes the last page, marked end-of-stream. It does not close the
// underlying writer. Safe to call twice.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	err := w.flush(0x04)
	w.closed = true
	return err
}

// FrameSamples is the duration of one frame of a TOC byte's configuration,
// in 48 kHz samples (RFC 6716 §3.1).
func FrameSamples(toc byte) uint32 {
	switch cfg := toc >> 3; {
	case cfg < 12: // SILK: 10, 20, 40, 60 ms
		return [4]uint32{480, 960, 1920, 2880}[cfg&3]
	case cfg < 16: // hybrid: 10, 20 ms
		return [2]uint32{480, 960}[cfg&1]
	default: // CELT: 2.5, 5, 10, 20 ms
		return [4]uint32{120, 240, 480, 960}[cfg&3]
	}
}

// Samples returns the number of 48 kHz samples in an Opus packet (RFC 6716 §3.1).
func Samples(pkt []byte) (uint32, error) {
	if len(pkt) == 0 {
		return 0, fmt.Errorf("%w: empty", ErrBadPacket)
	}
	toc := pkt[0]
	per := FrameSamples(toc)
	frames := uint32(1)
	switch toc & 3 {
	case 1, 2:
		frames = 2
	case 3:
		if len(pkt) < 2 {
			return 0, fmt.Errorf("%w: code 3 without frame count", ErrBadPacket)
		}
		frames = uint32(pkt[1] & 0x3F)
		if frames == 0 {
			return 0, fmt.Errorf("%w: zero frames", ErrBadPacket)
		}
	}
	if n := per * frames; n <= 5760 {
		return n, nil
	}
	return 0, fmt.Errorf("%w: more than 120 ms", ErrBadPacket)
}

var crcTable = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

// PageChecksum is an Ogg page's CRC-32, computed with the page's own CRC
// field (bytes 22-25) taken as zero, so it both writes and checks pages.
func PageChecksum(p []byte) uint32 {
	var c uint32
	for i, b := range p {
		if i >= 22 && i < 26 {
			b = 0
		}
		c = c<<8 ^ crcTable[byte(c>>24)^b]
	}
	return c
}
