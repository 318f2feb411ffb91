package billing

import (
	"bytes"
	_ "embed"
)

//go:embed ratecards/sample.json
var sampleRateCard []byte

// SampleRateCard returns the shipped sample rate card (per-second billing),
// which the demo uses when no CALLGW_RATE_CARD is set.
func SampleRateCard() (*RateCard, error) { return LoadRateCard(bytes.NewReader(sampleRateCard)) }
