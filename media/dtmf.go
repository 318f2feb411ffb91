package media

import "fmt"

// RFC 4733 telephone-event codes for DTMF: 0-9, * = 10, # = 11, A-D = 12-15.
func dtmfCode(d rune) (uint8, error) {
	switch {
	case d >= '0' && d <= '9':
		return uint8(d - '0'), nil
	case d == '*':
		return 10, nil
	case d == '#':
		return 11, nil
	case d >= 'A' && d <= 'D':
		return uint8(d-'A') + 12, nil
	case d >= 'a' && d <= 'd':
		return uint8(d-'a') + 12, nil
	}
	return 0, fmt.Errorf("%w: %q", ErrBadDTMF, d)
}

func dtmfDigit(code uint8) (rune, bool) {
	switch {
	case code <= 9:
		return rune('0' + code), true
	case code == 10:
		return '*', true
	case code == 11:
		return '#', true
	case code <= 15:
		return rune('A' + code - 12), true
	}
	return 0, false
}

// telephoneEvent is the 4-byte RFC 4733 payload.
type telephoneEvent struct {
	Event    uint8
	End      bool
	Volume   uint8
	Duration uint16
}

func parseTelephoneEvent(p []byte) (telephoneEvent, bool) {
	if len(p) < 4 {
		return telephoneEvent{}, false
	}
	return telephoneEvent{Event: p[0], End: p[1]&0x80 != 0, Volume: p[1] & 0x3f,
		Duration: uint16(p[2])<<8 | uint16(p[3])}, true
}

func (e telephoneEvent) put(p []byte) {
	p[0] = e.Event
	p[1] = e.Volume & 0x3f
	if e.End {
		p[1] |= 0x80
	}
	p[2] = byte(e.Duration >> 8)
	p[3] = byte(e.Duration)
}
