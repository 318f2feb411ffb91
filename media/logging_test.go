package media

import (
	"errors"
	"io"
	"testing"
)

func TestBenignPionWarning(t *testing.T) {
	tests := []struct {
		name   string
		format string
		args   []any
		want   bool
	}{
		{"rtp acceptor ends", "Failed to accept RTP %v", []any{errors.New("the stream is already closed")}, true},
		{"rtcp acceptor ends", "Failed to accept RTCP %v", []any{io.EOF}, true},
		{"receiver closed before its first packet", "Could not determine PayloadType for SSRC %d (%s)", []any{uint32(7), io.EOF}, true},
		{"receiver failed otherwise", "Could not determine PayloadType for SSRC %d (%s)", []any{uint32(7), errors.New("timeout")}, false},
		{"anything else", "Failed to start SCTP: %v", []any{io.EOF}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := benignPionWarning(tt.format, tt.args); got != tt.want {
				t.Fatalf("benignPionWarning(%q) = %v, want %v", tt.format, got, tt.want)
			}
		})
	}
}
