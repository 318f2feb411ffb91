package metasim

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// Adversary switches on behaviours Meta documents as possible, so that tests
// meet them on purpose rather than by luck. The zero value is a polite Meta
// (one event per POST, in order, once). Every random choice uses one RNG
// seeded from Seed, logged at New and SetAdversary, so a failure reproduces
// with the same seed (timing aside).
type Adversary struct {
	// Seed seeds the RNG (0: derived from the wall clock; the seed is logged).
	Seed uint64

	// BatchMax > 1 puts up to that many queued changes into one POST, grouped
	// by WABA into entry[] and changes[] (several numbers and WABAs share a POST).
	BatchMax int
	// BatchWindow is how long the sender waits to fill a batch (default 20 ms when BatchMax > 1).
	BatchWindow time.Duration

	// Reorder is the probability that a change is held back by a random delay
	// up to ReorderDelay, so later changes overtake it.
	Reorder float64
	// ReorderDelay bounds the random hold (default 150 ms).
	ReorderDelay time.Duration
	// Hold delays every change carrying one of these events or statuses
	// ("connect", "terminate", "RINGING", "ACCEPTED", "REJECTED", "sent",
	// "delivered", "read", "call_permission_reply", ...) by the given time:
	// a deterministic reorder (e.g. {"connect": 300ms} → terminate before connect).
	Hold map[string]time.Duration

	// Duplicate is the probability a delivered change is delivered again
	// (alone or in another batch) shortly after.
	Duplicate float64
	// RetryProcessed is the probability that a 200 is treated as a timeout
	// (Meta's ~20 s HTTP timeout) and the same body is delivered again.
	RetryProcessed float64

	// HidePhoneNumbers makes every user BSUID-only in webhooks: no from/to/
	// recipient_id/wa_id, only *_user_id and contacts with user_id and username.
	HidePhoneNumbers bool
	// DurationMismatch is the probability a terminate's duration differs
	// from end_time−start_time (Meta's sample: 480 vs 120).
	DurationMismatch float64
	// IntegerTimestamps is the probability each timestamp, start_time,
	// end_time or expiration_timestamp is a JSON integer instead of a string.
	IntegerTimestamps float64
	// OmitDirection is the probability a user-initiated connect has no direction.
	OmitDirection float64
	// ExtraErrorsInCall puts a copy of terminate errors[] inside the call
	// object too (reference: unconfirmed whether Meta ever does; read both).
	ExtraErrorsInCall bool
}

// AdversaryAll switches everything on at test-friendly strengths.
func AdversaryAll() Adversary {
	return Adversary{
		BatchMax: 8, BatchWindow: 30 * time.Millisecond,
		Reorder: 0.3, ReorderDelay: 150 * time.Millisecond,
		Duplicate: 0.3, RetryProcessed: 0.2,
		HidePhoneNumbers: true, DurationMismatch: 0.5, IntegerTimestamps: 0.5, OmitDirection: 0.5,
		ExtraErrorsInCall: true,
	}
}

func (a Adversary) withDefaults() Adversary {
	if a.BatchMax > 1 && a.BatchWindow == 0 {
		a.BatchWindow = 20 * time.Millisecond
	}
	if a.ReorderDelay == 0 {
		a.ReorderDelay = 150 * time.Millisecond
	}
	return a
}

var errAdversary = errors.New("adversary")

func (a Adversary) validate() error {
	for name, p := range map[string]float64{"Reorder": a.Reorder, "Duplicate": a.Duplicate,
		"RetryProcessed": a.RetryProcessed, "DurationMismatch": a.DurationMismatch,
		"IntegerTimestamps": a.IntegerTimestamps, "OmitDirection": a.OmitDirection} {
		if p < 0 || p > 1 {
			return fmt.Errorf("%w: %s=%v must be a probability in [0,1]", errAdversary, name, p)
		}
	}
	if a.BatchMax < 0 || a.BatchWindow < 0 || a.ReorderDelay < 0 {
		return fmt.Errorf("%w: BatchMax, BatchWindow and ReorderDelay must not be negative", errAdversary)
	}
	for k, d := range a.Hold {
		if d < 0 {
			return fmt.Errorf("%w: Hold[%s] negative", errAdversary, k)
		}
	}
	return nil
}

// SetAdversary changes the adversarial switches at runtime (bad values are
// refused and change nothing). The RNG is reseeded from a.Seed.
func (s *Sim) SetAdversary(a Adversary) error {
	if err := a.validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	a = a.withDefaults()
	seed := a.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	s.amu.Lock()
	s.adv = a
	s.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s.amu.Unlock()
	s.log.Info("metasim: adversary set", "seed", seed, "batch", a.BatchMax, "reorder", a.Reorder,
		"duplicate", a.Duplicate, "retry_processed", a.RetryProcessed, "hide_phones", a.HidePhoneNumbers)
	return nil
}

// Adversary returns the current adversarial switches.
func (s *Sim) Adversary() Adversary {
	s.amu.Lock()
	defer s.amu.Unlock()
	return s.adv
}

// chance draws from the seeded RNG: true with probability p.
func (s *Sim) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	s.amu.Lock()
	defer s.amu.Unlock()
	return s.rng.Float64() < p
}

// randDur returns a random duration in [0, max].
func (s *Sim) randDur(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	s.amu.Lock()
	defer s.amu.Unlock()
	return time.Duration(s.rng.Int64N(int64(max) + 1))
}

func (s *Sim) hidePhones() bool {
	s.amu.Lock()
	defer s.amu.Unlock()
	return s.adv.HidePhoneNumbers
}

// drift turns a webhook value into generic JSON and applies type drift:
// epoch strings become integers with probability IntegerTimestamps.
func (s *Sim) drift(value any) (json.RawMessage, error) {
	raw, err := json.Marshal(value)
	if err != nil {
		return nil, fmt.Errorf("metasim: marshal webhook value: %w", err)
	}
	p := s.Adversary().IntegerTimestamps
	if p <= 0 {
		return raw, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("metasim: webhook value: %w", err)
	}
	var walk func(any)
	walk = func(x any) {
		switch t := x.(type) {
		case map[string]any:
			for k, val := range t {
				switch k {
				case "timestamp", "start_time", "end_time", "expiration_timestamp":
					if str, ok := val.(string); ok {
						if n, err := strconv.ParseInt(str, 10, 64); err == nil && s.chance(p) {
							t[k] = n
						}
					}
				default:
					walk(val)
				}
			}
		case []any:
			for _, e := range t {
				walk(e)
			}
		}
	}
	walk(v)
	out, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("metasim: webhook value: %w", err)
	}
	return out, nil
}
