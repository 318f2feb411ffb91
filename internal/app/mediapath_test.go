package app

import (
	"io"
	"strings"
	"testing"

	"github.com/callgw/callgw/media"
)

// TestMediaPathSetting: CALLGW_MEDIA_PATH picks the media packet path; a
// bad value is a clear error.
func TestMediaPathSetting(t *testing.T) {
	tests := []struct {
		name, env string
		args      []string
		want      media.PacketPath
		wantErr   string
	}{
		{name: "default", want: media.PathDefault},
		{name: "env pion", env: "pion", want: media.PathPion},
		{name: "flag fast", args: []string{"-media-path", "fast"}, want: media.PathFast},
		{name: "flag over env", env: "fast", args: []string{"-media-path", "pion"}, want: media.PathPion},
		{name: "unknown", env: "quick", wantErr: "CALLGW_MEDIA_PATH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == "CALLGW_MEDIA_PATH" {
					return tt.env
				}
				return ""
			}
			cfg, err := LoadConfig(tt.args, getenv, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MediaPath != tt.want {
				t.Fatalf("media path %v, want %v", cfg.MediaPath, tt.want)
			}
		})
	}
}
