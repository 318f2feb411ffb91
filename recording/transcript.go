package recording

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Transcript is Meta's transcript document.
type Transcript struct {
	Metadata struct {
		ProcessedAt string `json:"processed_at"`
		Audio       struct {
			Duration    float64 `json:"duration"`
			SampleRate  int     `json:"sample_rate"`
			Channels    int     `json:"channels"`
			AudioFormat string  `json:"audio_format"`
		} `json:"audio"`
	} `json:"metadata"`
	Transcript struct {
		Text       string    `json:"text"`
		Language   string    `json:"language"`
		Duration   float64   `json:"duration"`
		Confidence float64   `json:"confidence"`
		Segments   []Segment `json:"segments"`
	} `json:"transcript"`
}

// Segment is one stretch of speech by one side.
type Segment struct {
	ID         int     `json:"id"`
	Speaker    string  `json:"speaker"` // "Business" or "Customer"
	Channel    int     `json:"channel"` // 0 business, 1 user
	Start      float64 `json:"start"`   // seconds
	End        float64 `json:"end"`
	Text       string  `json:"text"`
	Confidence float64 `json:"confidence"`
	Words      []Word  `json:"words"`
}

// Word is one recognised word.
type Word struct {
	Word       string  `json:"word"`
	Start      float64 `json:"start"`
	End        float64 `json:"end"`
	Confidence float64 `json:"confidence"`
	Lang       string  `json:"lang"`
}

// Turn is what a page shows: consecutive segments of one speaker joined.
type Turn struct {
	Speaker string  `json:"speaker"` // "Business" or "Customer"
	Start   float64 `json:"start"`
	End     float64 `json:"end"`
	Text    string  `json:"text"`
}

// ParseTranscript reads a transcript document (at most 16 MiB). An empty
// transcript (unsupported language) parses to no segments.
func ParseTranscript(r io.Reader) (Transcript, error) {
	var t Transcript
	dec := json.NewDecoder(io.LimitReader(r, 16<<20))
	if err := dec.Decode(&t); err != nil {
		return Transcript{}, fmt.Errorf("%w: %v", ErrBadTranscript, err)
	}
	return t, nil
}

// Turns merges consecutive segments by the same speaker, in time order. A
// segment without a speaker is named from its channel (0 Business, 1 Customer).
func (t Transcript) Turns() []Turn {
	segs := append([]Segment(nil), t.Transcript.Segments...)
	sort.SliceStable(segs, func(i, j int) bool { return segs[i].Start < segs[j].Start })
	var out []Turn
	for _, s := range segs {
		sp := s.Speaker
		if sp == "" {
			sp = map[int]string{0: "Business", 1: "Customer"}[s.Channel]
		}
		text := strings.TrimSpace(s.Text)
		if text == "" {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Speaker == sp {
			out[n-1].Text += " " + text
			if s.End > out[n-1].End {
				out[n-1].End = s.End
			}
			continue
		}
		out = append(out, Turn{Speaker: sp, Start: s.Start, End: s.End, Text: text})
	}
	return out
}
