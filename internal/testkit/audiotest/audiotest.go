// Package audiotest is test support for checking real audio: it decodes Opus
// with libopus (cgo, libopus-dev) and measures tone frequencies with the
// Goertzel algorithm. Only tests import it, so the callgw binary stays pure Go.
package audiotest

/*
#cgo pkg-config: opus
#include <opus.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// SampleRate is the rate the decoder produces (Opus' native rate).
const SampleRate = 48000

// Decoder decodes mono Opus packets to 48 kHz PCM.
type Decoder struct {
	st  *C.OpusDecoder
	pcm []int16
}

// NewDecoder returns a mono 48 kHz decoder.
func NewDecoder() (*Decoder, error) {
	var e C.int
	st := C.opus_decoder_create(C.opus_int32(SampleRate), 1, &e)
	if e != C.OPUS_OK || st == nil {
		return nil, fmt.Errorf("audiotest: opus_decoder_create: %d", int(e))
	}
	return &Decoder{st: st, pcm: make([]int16, 5760)}, nil
}

// Close frees the decoder.
func (d *Decoder) Close() {
	if d.st != nil {
		C.opus_decoder_destroy(d.st)
		d.st = nil
	}
}

// Decode decodes one Opus packet and returns a slice of samples valid until
// the next call.
func (d *Decoder) Decode(pkt []byte) ([]int16, error) {
	if len(pkt) == 0 {
		return nil, errors.New("audiotest: empty packet")
	}
	n := C.opus_decode(d.st, (*C.uchar)(unsafe.Pointer(&pkt[0])), C.opus_int32(len(pkt)),
		(*C.opus_int16)(unsafe.Pointer(&d.pcm[0])), C.int(len(d.pcm)), 0)
	if n < 0 {
		return nil, fmt.Errorf("audiotest: opus_decode: %d", int(n))
	}
	return d.pcm[:int(n)], nil
}

// DecodeAll decodes a sequence of Opus packets into one PCM buffer.
func DecodeAll(pkts [][]byte) ([]int16, error) {
	d, err := NewDecoder()
	if err != nil {
		return nil, err
	}
	defer d.Close()
	var out []int16
	for _, p := range pkts {
		s, err := d.Decode(p)
		if err != nil {
			return nil, err
		}
		out = append(out, s...)
	}
	return out, nil
}

// Power returns the Goertzel power of freq (Hz) in pcm at SampleRate,
// normalised by the signal length.
func Power(pcm []int16, freq float64) float64 {
	if len(pcm) == 0 {
		return 0
	}
	w := 2 * math.Pi * freq / SampleRate
	coeff := 2 * math.Cos(w)
	var s1, s2 float64
	for _, x := range pcm {
		s0 := float64(x)/32768 + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	p := s1*s1 + s2*s2 - coeff*s1*s2
	return p / float64(len(pcm)) / float64(len(pcm))
}

// DominantFrequency scans 100..4000 Hz in 10 Hz steps and returns the
// frequency with the most power, with that power.
func DominantFrequency(pcm []int16) (freq, power float64) {
	for f := 100.0; f <= 4000; f += 10 {
		if p := Power(pcm, f); p > power {
			freq, power = f, p
		}
	}
	return freq, power
}

// RMS returns the root mean square level of pcm in [0,1].
func RMS(pcm []int16) float64 {
	if len(pcm) == 0 {
		return 0
	}
	var sum float64
	for _, x := range pcm {
		v := float64(x) / 32768
		sum += v * v
	}
	return math.Sqrt(sum / float64(len(pcm)))
}

// HasTone reports whether pcm's dominant frequency is within tol Hz of want
// and the signal is not near-silent.
func HasTone(pcm []int16, want, tol float64) (bool, float64) {
	if RMS(pcm) < 0.01 {
		return false, 0
	}
	f, _ := DominantFrequency(pcm)
	return math.Abs(f-want) <= tol, f
}
