// Package oggopus reads the Opus packets out of an Ogg Opus file (RFC 7845),
// honouring the Ogg lacing so pages with many packets split correctly. The
// simulator and the test agents use it to play known audio without an encoder.
package oggopus

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// ErrNotOpus is returned when the stream is not Ogg Opus.
var ErrNotOpus = errors.New("oggopus: not an Ogg Opus stream")

// ReadPackets returns every audio packet of the first logical stream, without
// the OpusHead and OpusTags header packets.
func ReadPackets(r io.Reader) ([][]byte, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("oggopus: read: %w", err)
	}
	var (
		pkts    [][]byte
		partial []byte
	)
	for len(data) > 0 {
		if len(data) < 27 || !bytes.Equal(data[:4], []byte("OggS")) {
			return nil, fmt.Errorf("%w: bad page header", ErrNotOpus)
		}
		nseg := int(data[26])
		if len(data) < 27+nseg {
			return nil, fmt.Errorf("%w: truncated segment table", ErrNotOpus)
		}
		lacing := data[27 : 27+nseg]
		body := data[27+nseg:]
		off := 0
		for _, l := range lacing {
			if off+int(l) > len(body) {
				return nil, fmt.Errorf("%w: truncated page", ErrNotOpus)
			}
			partial = append(partial, body[off:off+int(l)]...)
			off += int(l)
			if l < 255 {
				pkts = append(pkts, partial)
				partial = nil
			}
		}
		data = body[off:]
	}
	if len(pkts) < 2 || !bytes.HasPrefix(pkts[0], []byte("OpusHead")) {
		return nil, ErrNotOpus
	}
	return pkts[2:], nil
}
