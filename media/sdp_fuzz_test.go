package media

import (
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// FuzzCheckRemoteSDP feeds outside SDP (Meta's offers and answers, agents'
// answers) to the check that guards every leg: it must never panic and must
// fail only with ErrBadSDP or ErrNoOpus.
//
//	go test -run '^$' -fuzz FuzzCheckRemoteSDP -fuzztime 30s ./media
func FuzzCheckRemoteSDP(f *testing.F) {
	for _, name := range []string{"connect_offer.json", "connect_answer_business.json"} {
		b, err := os.ReadFile("../testdata/webhooks/" + name)
		if err != nil {
			f.Fatal(err)
		}
		var env struct {
			Entry []struct {
				Changes []struct {
					Value struct {
						Calls []struct {
							Session struct{ SDP string } `json:"session"`
						} `json:"calls"`
					} `json:"value"`
				} `json:"changes"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(b, &env); err != nil {
			f.Fatal(err)
		}
		f.Add(env.Entry[0].Changes[0].Value.Calls[0].Session.SDP)
	}
	f.Add("")
	f.Add("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n")
	f.Fuzz(func(t *testing.T, raw string) {
		err := checkRemoteSDP(raw)
		if err != nil && !errors.Is(err, ErrBadSDP) && !errors.Is(err, ErrNoOpus) {
			t.Fatalf("unexpected error type: %v", err)
		}
	})
}
