package audiotest

import (
	"os"
	"testing"

	"github.com/callgw/callgw/internal/oggopus"
)

func TestDecodeToneFixture(t *testing.T) {
	for _, tc := range []struct {
		file string
		want float64
	}{
		{"../../../testdata/audio/caller-440.ogg", 440},
		{"../../../testdata/audio/agent-1000.ogg", 1000},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f, err := os.Open(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			pkts, err := oggopus.ReadPackets(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(pkts) < 500 || len(pkts) > 502 { // the encoder pads the tail
				t.Fatalf("%d packets, want about 500 (10 s of 20 ms)", len(pkts))
			}
			pcm, err := DecodeAll(pkts[:100])
			if err != nil {
				t.Fatal(err)
			}
			ok, f0 := HasTone(pcm, tc.want, 15)
			if !ok {
				t.Fatalf("dominant %v Hz, want %v", f0, tc.want)
			}
			if ok, _ := HasTone(make([]int16, 4800), tc.want, 15); ok {
				t.Fatal("silence reported as tone")
			}
		})
	}
}
