// Command wavgen writes the tonal WAV files behind callgw's default prompts
// and the media test fixtures: a pure tone, or the hold melody. 48 kHz,
// 16-bit mono PCM; opusenc encodes them (see media/prompts/make.sh).
//
//	go run ./media/prompts/internal/wavgen -tone 700 -dur 1s -o tone.wav
//	go run ./media/prompts/internal/wavgen -melody -o hold.wav
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"os"
	"time"
)

const rate = 48000

func main() {
	var (
		tone   = flag.Float64("tone", 0, "pure tone frequency in Hz")
		dur    = flag.Duration("dur", time.Second, "tone duration")
		amp    = flag.Float64("amp", 0.5, "amplitude 0..1")
		melody = flag.Bool("melody", false, "the hold melody instead of a tone")
		out    = flag.String("o", "", "output WAV file")
	)
	flag.Parse()
	if *out == "" || (*tone <= 0) == !*melody {
		fmt.Fprintln(os.Stderr, "usage: wavgen (-tone HZ [-dur D] | -melody) -o out.wav")
		os.Exit(2)
	}
	var pcm []int16
	if *melody {
		pcm = holdMelody()
	} else {
		pcm = note(nil, []float64{*tone}, *dur, *amp, 0)
	}
	if err := os.WriteFile(*out, wav(pcm), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// note appends a tone of the given frequencies (summed), with a short
// attack and a release of fade so notes do not click.
func note(pcm []int16, freqs []float64, d time.Duration, amp float64, fade time.Duration) []int16 {
	n := int(d * rate / time.Second)
	ramp := int(10 * time.Millisecond * rate / time.Second)
	rel := int(fade * rate / time.Second)
	for i := range n {
		env := 1.0
		if i < ramp {
			env = float64(i) / float64(ramp)
		}
		if rel > 0 && i >= n-rel {
			env *= float64(n-i) / float64(rel)
		} else if i >= n-ramp {
			env *= float64(n-i) / float64(ramp)
		}
		var s float64
		for _, f := range freqs {
			s += math.Sin(2 * math.Pi * f * float64(i) / rate)
		}
		s = s / float64(len(freqs)) * amp * env
		pcm = append(pcm, int16(s*32767))
	}
	return pcm
}

// holdMelody is a gentle 8 s loop in C major: a broken-chord pattern of
// soft tones (C E G C' / A C' E' A / F A C' F' / G B D' G), each note a
// pure tone plus its lower octave, 250 ms with a long release.
func holdMelody() []int16 {
	const (
		c4 = 261.63
		d4 = 293.66
		e4 = 329.63
		f4 = 349.23
		g4 = 392.00
		a4 = 440.00
		b4 = 493.88
		c5 = 523.25
		d5 = 587.33
		e5 = 659.25
		f5 = 698.46
	)
	bars := [][4]float64{
		{c4, e4, g4, c5}, {a4, c5, e5, a4}, {f4, a4, c5, f5}, {g4, b4, d5, g4},
	}
	var pcm []int16
	for _, bar := range bars {
		for range 2 {
			for _, f := range bar {
				pcm = note(pcm, []float64{f, f / 2}, 250*time.Millisecond, 0.35, 180*time.Millisecond)
			}
		}
	}
	return pcm
}

// wav encodes 48 kHz mono 16-bit PCM as a RIFF/WAVE file.
func wav(pcm []int16) []byte {
	data := len(pcm) * 2
	b := make([]byte, 0, 44+data)
	b = append(b, "RIFF"...)
	b = binary.LittleEndian.AppendUint32(b, uint32(36+data))
	b = append(b, "WAVEfmt "...)
	b = binary.LittleEndian.AppendUint32(b, 16)
	b = binary.LittleEndian.AppendUint16(b, 1) // PCM
	b = binary.LittleEndian.AppendUint16(b, 1) // mono
	b = binary.LittleEndian.AppendUint32(b, rate)
	b = binary.LittleEndian.AppendUint32(b, rate*2)
	b = binary.LittleEndian.AppendUint16(b, 2)
	b = binary.LittleEndian.AppendUint16(b, 16)
	b = append(b, "data"...)
	b = binary.LittleEndian.AppendUint32(b, uint32(data))
	for _, s := range pcm {
		b = binary.LittleEndian.AppendUint16(b, uint16(s))
	}
	return b
}
