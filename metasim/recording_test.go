package metasim

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/oggopus"
	"github.com/callgw/callgw/internal/testkit/audiotest"
)

func TestRecordingOptionsValidation(t *testing.T) {
	long := strings.Repeat("x", 251)
	tests := []struct {
		name string
		rec  map[string]any
		want int
	}{
		{"no purpose", map[string]any{"status": "ENABLED", "announcement_language": "en_US"}, 100},
		{"long purpose", map[string]any{"status": "ENABLED", "purpose": long, "announcement_language": "en_US"}, 100},
		{"bad language", map[string]any{"status": "ENABLED", "purpose": "qa", "announcement_language": "xx"}, 100},
		{"bad status", map[string]any{"status": "ON"}, 100},
		{"disabled", map[string]any{"status": "DISABLED"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			uc, err := e.sim.PlaceCall(ctxT(t), CallOptions{From: "447700900123"})
			if err != nil {
				t.Fatal(err)
			}
			answer := newBizPeer(t).answer(t, uc.LocalSDP())
			st, body := e.calls(t, map[string]any{"action": "accept", "call_id": uc.ID(), "recording": tt.rec,
				"session": map[string]any{"sdp_type": "answer", "sdp": answer}})
			if errCode(body) != tt.want || (tt.want != 0 && uc.Reached(Accepted)) || (tt.want == 0 && st != 200) {
				t.Fatalf("accept = %d %v", st, body)
			}
		})
	}
}

func TestRecordingAndTranscriptWebhooks(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1780000000, 0)}
	e := newEnv(t, func(c *Config) { c.Clock = clk.Now })
	ctx := ctxT(t)
	uc, err := e.sim.PlaceCall(ctx, CallOptions{From: "447700900123", Audio: ToneAudio()})
	if err != nil {
		t.Fatal(err)
	}
	biz := newBizPeer(t)
	answer := biz.answer(t, uc.LocalSDP())
	opts := map[string]any{"status": "ENABLED", "purpose": "quality assurance", "announcement_language": "en_US"}
	if st, body := e.calls(t, map[string]any{"action": "accept", "call_id": uc.ID(), "recording": opts, "transcription": opts,
		"session": map[string]any{"sdp_type": "answer", "sdp": answer}}); st != 200 {
		t.Fatalf("accept = %d %v", st, body)
	}
	biz.play(readOgg(t, "../testdata/audio/agent-1000.ogg"))
	biz.waitOpus(t, 80) // about a second of the caller's tone
	if err := uc.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	rh := e.recv.wait(t, "recording", callEventIs(uc.ID(), "call_recording_available"))
	ev := rh.first("calls")
	audio := ev["call_recording"].(map[string]any)["audio"].(map[string]any)
	if ev["from"] != "447700900123" || ev["from_user_id"] != uc.UserID() || audio["mime_type"] != "audio/ogg; codecs=opus" {
		t.Fatalf("recording webhook = %s", rh.raw)
	}
	get := func(u, token string) (int, []byte) {
		req, _ := http.NewRequest("GET", u, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if st, _ := get(audio["url"].(string), ""); st != 401 {
		t.Fatalf("download without a token = %d", st)
	}
	st, ogg := get(audio["url"].(string), testToken)
	sum := sha256.Sum256(ogg)
	if st != 200 || base64.StdEncoding.EncodeToString(sum[:]) != audio["sha256"] {
		t.Fatalf("download = %d, sha256 mismatch", st)
	}
	pkts, err := oggopus.ReadPackets(bytes.NewReader(ogg))
	if err != nil || len(pkts) < 20 {
		t.Fatalf("recording is not Ogg Opus with audio: %d packets, %v", len(pkts), err)
	}
	pcm, err := audiotest.DecodeAll(pkts)
	if err != nil {
		t.Fatal(err)
	}
	if ok, f := audiotest.HasTone(pcm, 440, 15); !ok {
		t.Fatalf("recording holds %.0f Hz, want the caller's 440", f)
	}
	th := e.recv.wait(t, "transcript", callEventIs(uc.ID(), "call_transcription_available"))
	doc := th.first("calls")["call_transcript"].(map[string]any)["document"].(map[string]any)
	st, raw := get(doc["url"].(string), testToken)
	var tr struct {
		Metadata struct {
			ProcessedAt string `json:"processed_at"`
			Audio       struct {
				Duration float64 `json:"duration"`
			} `json:"audio"`
		} `json:"metadata"`
		Transcript struct {
			Text     string `json:"text"`
			Language string `json:"language"`
			Segments []struct {
				Speaker string `json:"speaker"`
				Channel int    `json:"channel"`
				Words   []struct {
					Word string `json:"word"`
				} `json:"words"`
			} `json:"segments"`
		} `json:"transcript"`
	}
	if st != 200 || doc["mime_type"] != "application/json" || json.Unmarshal(raw, &tr) != nil ||
		len(tr.Transcript.Segments) != 2 || tr.Transcript.Segments[1].Speaker != "Customer" || tr.Transcript.Segments[1].Channel != 1 ||
		!strings.Contains(tr.Transcript.Text, "[Business]") || tr.Metadata.ProcessedAt == "" {
		t.Fatalf("transcript = %d %s", st, raw)
	}
	// URLs expire after 5 minutes; GET /{MEDIA_ID} gives a fresh one
	clk.Add(6 * time.Minute)
	if st, _ := get(audio["url"].(string), testToken); st != 404 {
		t.Fatalf("expired URL = %d", st)
	}
	st, info := e.call(t, "GET", "/v23.0/"+audio["id"].(string), testToken, nil)
	if st != 200 || info["sha256"] != audio["sha256"] || info["url"] == audio["url"] {
		t.Fatalf("media info = %d %v", st, info)
	}
	if st, again := get(info["url"].(string), testToken); st != 200 || !bytes.Equal(again, ogg) {
		t.Fatalf("fresh URL = %d", st)
	}
	// FailMediaDownloads: the next two downloads fail with 500, then they work again.
	e.sim.FailMediaDownloads(2)
	for i, want := range []int{500, 500, 200} {
		if st, _ := get(info["url"].(string), testToken); st != want {
			t.Fatalf("download %d with failures = %d, want %d", i, st, want)
		}
	}

}
