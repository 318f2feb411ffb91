package recording

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/callgw/callgw/recording/opusfile"
)

func samplesOf(p []byte) (uint32, error) { return opusfile.Samples(p) }

func TestParseEvent(t *testing.T) {
	cases := []struct {
		file, raw string
		want      Notice
		err       error
	}{
		{file: "testdata/recording_event.json", want: Notice{Number: "106540352242922",
			CallID: "wacid.HBgLMTIxMjQ2NjI0NjUVAgARGCAyODMwNzRDNkE0RkQ3NDA3NzE4RDZCNkQ4NkUzODc4QQA/x+=", Kind: KindRecording,
			MediaID: "1234567890123456", MimeType: "audio/ogg; codecs=opus", At: time.Unix(1764400000, 0).UTC()}},
		{file: "testdata/transcription_event.json", want: Notice{Number: "106540352242922", CallID: "wacid.ABC",
			Kind: KindTranscript, MediaID: "2234567890123456", MimeType: "application/json", At: time.Unix(1764400001, 0).UTC()}},
		{raw: `{"id":"wacid.1","event":"connect","timestamp":"1"}`, err: ErrNotRecordingEvent},
		{raw: `{"id":"wacid.1","event":"call_recording_available","timestamp":"1"}`, err: ErrBadNotice},
		{raw: `{"id":"wacid.1","event":"call_recording_available","timestamp":"x","call_recording":{"audio":{"id":"1"}}}`, err: ErrBadNotice},
		{raw: `{"id":"wacid.1","event":"call_transcription_available","timestamp":"5","call_transcript":{"document":{"id":"1","sha256":"bad"}}}`, err: ErrBadNotice},
		{raw: `[1,2]`, err: ErrBadNotice},
	}
	for _, c := range cases {
		raw := []byte(c.raw)
		if c.file != "" {
			var err error
			if raw, err = os.ReadFile(c.file); err != nil {
				t.Fatal(err)
			}
		}
		n, err := ParseEvent("106540352242922", raw)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%s%s: err %v, want %v", c.file, c.raw, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if n.SHA256 == "" || !strings.HasPrefix(n.URL, "https://") {
			t.Fatalf("%s: %+v", c.file, n)
		}
		n.SHA256, n.URL = "", ""
		if n != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.file, n, c.want)
		}
	}
}

func TestTurns(t *testing.T) {
	f, err := os.Open("testdata/transcript.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr, err := ParseTranscript(f)
	if err != nil {
		t.Fatal(err)
	}
	got := tr.Turns()
	want := []Turn{
		{"Business", 0.4, 3.4, "Hello, thanks for calling. How can I help?"},
		{"Customer", 4.0, 8.6, "Hi, my order has not arrived. It was due Monday."},
		{"Business", 9.0, 10.5, "Let me check that for you."},
	}
	if len(got) != len(want) {
		t.Fatalf("turns %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("turn %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if tr.Transcript.Language != "en" || tr.Metadata.Audio.SampleRate != 48000 {
		t.Fatalf("%+v", tr)
	}
	if _, err := ParseTranscript(strings.NewReader("{")); !errors.Is(err, ErrBadTranscript) {
		t.Fatalf("bad json: %v", err)
	}
	empty, err := ParseTranscript(strings.NewReader(`{"metadata":{},"transcript":{"text":"","segments":[]}}`))
	if err != nil || len(empty.Turns()) != 0 {
		t.Fatalf("empty transcript: %v %+v", err, empty.Turns())
	}
}

func TestObjectKey(t *testing.T) {
	day := time.Date(2026, 1, 5, 23, 30, 0, 0, time.FixedZone("x", -3600))
	k, err := ObjectKey("1555", day, "wacid.a/b", KindTranscript)
	if err != nil || k != "1555/2026/01/06/wacid.a_b/transcript.json" {
		t.Fatalf("%q %v", k, err)
	}
	for _, c := range []struct{ num, call string }{{"", "c"}, {"1/2", "c"}, {"1", ""}, {"1", ".."}, {"1", "a b"}} {
		if _, err := ObjectKey(c.num, day, c.call, KindRecording); !errors.Is(err, ErrBadNotice) {
			t.Errorf("ObjectKey(%q, %q): %v", c.num, c.call, err)
		}
	}
}

func FuzzParseEvent(f *testing.F) {
	for _, p := range []string{"testdata/recording_event.json", "testdata/transcription_event.json"} {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseEvent("1555", b)
		if err != nil {
			return
		}
		if n.Validate() != nil {
			t.Fatalf("accepted invalid %+v", n)
		}
		if _, err := ObjectKey(n.Number, n.At, n.CallID, n.Kind); err != nil && !errors.Is(err, ErrBadNotice) {
			t.Fatal(err)
		}
	})
}

func FuzzParseTranscript(f *testing.F) {
	b, _ := os.ReadFile("testdata/transcript.json")
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := ParseTranscript(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		for _, turn := range tr.Turns() {
			if turn.Text == "" {
				t.Fatal("empty turn")
			}
		}
	})
}
