package metasim

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
)

// featureOpts is a recording or transcription object on connect/accept.
type featureOpts struct {
	Status               string `json:"status"`
	Purpose              string `json:"purpose"`
	AnnouncementLanguage string `json:"announcement_language"`
}

var announcementLanguages = []string{"en", "en_US", "en_AU", "en_CA", "en_GB", "en_IN", "en_NZ",
	"nl", "fr", "de", "hi", "it", "kn", "pt", "es", "es_ES", "te", "vi"}

// checkFeatures validates recording/transcription: status ENABLED|DISABLED;
// when ENABLED a purpose of 1–250 characters and a listed announcement
// language (Meta publishes no code for these errors: 100, as the reference
// expects). It returns the enabled ones.
func checkFeatures(rec, tr *featureOpts) (*featureOpts, *featureOpts, *graphError) {
	check := func(name string, f *featureOpts) (*featureOpts, *graphError) {
		if f == nil {
			return nil, nil
		}
		switch f.Status {
		case "DISABLED":
			return nil, nil
		case "ENABLED":
		default:
			return nil, errParam("Invalid parameter %s.status %q: ENABLED or DISABLED", name, f.Status)
		}
		if n := len([]rune(f.Purpose)); n == 0 || n > 250 {
			return nil, errParam("Invalid parameter %s.purpose: required, at most 250 characters", name)
		}
		if !contains(announcementLanguages, f.AnnouncementLanguage) {
			return nil, errParam("Invalid parameter %s.announcement_language %q", name, f.AnnouncementLanguage)
		}
		cp := *f
		return &cp, nil
	}
	r, gerr := check("recording", rec)
	if gerr != nil {
		return nil, nil, gerr
	}
	t, gerr := check("transcription", tr)
	if gerr != nil {
		return nil, nil, gerr
	}
	return r, t, nil
}

// mediaObj is a file Meta serves through the Media API.
type mediaObj struct {
	id   string
	mime string
	data []byte
	sha  string // base64 sha256
}

func (s *Sim) storeMedia(mime string, data []byte) *mediaObj {
	sum := sha256.Sum256(data)
	m := &mediaObj{id: strconv.FormatUint(uint64(time.Now().UnixNano())%1e15+1e15, 10), mime: mime, data: data,
		sha: base64.StdEncoding.EncodeToString(sum[:])}
	s.mu.Lock()
	for s.media[m.id] != nil {
		m.id = strconv.FormatUint(uint64(time.Now().UnixNano())%1e15+1e15+uint64(len(s.media)), 10)
	}
	s.media[m.id] = m
	s.mu.Unlock()
	return m
}

// mediaURL is a signed download URL valid for MediaURLValidity (Clock time).
func (s *Sim) mediaURL(id string) string {
	exp := strconv.FormatInt(s.cfg.Clock().Add(s.cfg.MediaURLValidity).Unix(), 10)
	s.mu.Lock()
	base := s.graphBase
	s.mu.Unlock()
	return fmt.Sprintf("%s/%s/media_download/%s?exp=%s&sig=%s", base, s.cfg.GraphVersion, id, exp, s.mediaSig(id, exp))
}

func (s *Sim) mediaSig(id, exp string) string {
	mac := hmac.New(sha256.New, []byte(s.cfg.AppSecret+"/media"))
	mac.Write([]byte(id + "|" + exp))
	return hex.EncodeToString(mac.Sum(nil))[:32]
}

// mediaInfo answers GET /{MEDIA_ID}: a fresh URL.
func (s *Sim) mediaInfo(id string) (map[string]any, bool) {
	s.mu.Lock()
	m := s.media[id]
	s.mu.Unlock()
	if m == nil {
		return nil, false
	}
	return map[string]any{"messaging_product": "whatsapp", "id": m.id, "url": s.mediaURL(m.id),
		"mime_type": m.mime, "sha256": m.sha, "file_size": len(m.data)}, true
}

// downloadMedia serves a signed media URL (bearer checked by the caller).
func (s *Sim) downloadMedia(id string, q url.Values) (any, *graphError) {
	exp := q.Get("exp")
	if !hmac.Equal([]byte(q.Get("sig")), []byte(s.mediaSig(id, exp))) {
		return nil, errGraph(http.StatusNotFound, 100, "Invalid media URL")
	}
	e, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || s.cfg.Clock().Unix() > e {
		return nil, errGraph(http.StatusNotFound, 100, "Media URL expired: fetch a new one with GET /{MEDIA_ID}")
	}
	s.mu.Lock()
	m := s.media[id]
	fail := s.mediaFail > 0 && m != nil
	if fail {
		s.mediaFail--
	}
	s.mu.Unlock()
	if m == nil {
		return nil, errGraph(http.StatusNotFound, 100, "Media not found")
	}
	if fail {
		return nil, errGraph(http.StatusInternalServerError, 2, "Service temporarily unavailable")
	}
	return &rawResponse{mime: m.mime, body: m.data}, nil
}

// sendRecordings queues call_recording_available / call_transcription_available
// after a picked-up call ends, when enabled on connect/accept.
func (c *UserCall) sendRecordings(endedAt time.Time) {
	c.mu.Lock()
	rec, tr := c.recording, c.transcript
	played := c.played
	dur := endedAt.Sub(c.acceptedAt)
	c.mu.Unlock()
	if rec == nil && tr == nil {
		return
	}
	s := c.s
	v := s.view(c.usr)
	build := func() {
		now := s.cfg.Clock()
		base := callEvent{ID: c.id, From: v.phone, FromUserID: v.bsuid, Timestamp: epoch(now)}
		if rec != nil {
			ogg, err := oggOf(played)
			if err != nil {
				s.log.Error("metasim: recording", "call", c.id, "err", err)
			} else {
				m := s.storeMedia("audio/ogg; codecs=opus", ogg)
				ev := base
				ev.Event = "call_recording_available"
				ev.CallRecording = &struct {
					Type  string   `json:"type"`
					Audio mediaRef `json:"audio"`
				}{Type: "audio", Audio: mediaRef{ID: m.id, SHA256: m.sha, MimeType: m.mime, URL: s.mediaURL(m.id)}}
				s.enqueue(c.num, "calls", ev.Event, callsValue{MessagingProduct: "whatsapp", Metadata: c.num.meta(),
					Contacts: []contact{v.contact()}, Calls: []callEvent{ev}}, nil)
			}
		}
		if tr != nil {
			doc, _ := json.Marshal(transcriptDoc(now, dur))
			m := s.storeMedia("application/json", doc)
			ev := base
			ev.Event = "call_transcription_available"
			ev.CallTranscript = &struct {
				Document mediaRef `json:"document"`
			}{Document: mediaRef{ID: m.id, SHA256: m.sha, MimeType: m.mime, URL: s.mediaURL(m.id)}}
			s.enqueue(c.num, "calls", ev.Event, callsValue{MessagingProduct: "whatsapp", Metadata: c.num.meta(),
				Contacts: []contact{v.contact()}, Calls: []callEvent{ev}}, nil)
		}
	}
	if s.cfg.RecordingDelay <= 0 {
		build()
		return
	}
	s.wg.Go(func() {
		t := time.NewTimer(s.cfg.RecordingDelay)
		defer t.Stop()
		select {
		case <-t.C:
			build()
		case <-s.stopCh:
		}
	})
}

// oggOf writes Opus frames (20 ms each) into an Ogg Opus file.
func oggOf(frames [][]byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := oggwriter.NewWith(&buf, 48000, 1)
	if err != nil {
		return nil, fmt.Errorf("ogg writer: %w", err)
	}
	ts := uint32(0)
	for i, f := range frames {
		p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: opusPT, SequenceNumber: uint16(i), Timestamp: ts}, Payload: f}
		if err := w.WriteRTP(p); err != nil {
			return nil, fmt.Errorf("ogg write: %w", err)
		}
		ts += opusSamples(f)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("ogg close: %w", err)
	}
	return buf.Bytes(), nil
}

// transcriptDoc is a transcript in the reference's shape. The simulated
// user plays a tone, so the text is fixed.
func transcriptDoc(now time.Time, dur time.Duration) map[string]any {
	d := dur.Seconds()
	return map[string]any{
		"metadata": map[string]any{"processed_at": now.UTC().Format(time.RFC3339),
			"audio": map[string]any{"duration": d, "sample_rate": 48000, "channels": 2, "audio_format": "opus"}},
		"transcript": map[string]any{
			"text":       "[Business] Hello, how can I help? [Customer] Beep.",
			"language":   "en",
			"duration":   d,
			"confidence": 0.9,
			"segments": []any{
				map[string]any{"id": 0, "speaker": "Business", "channel": 0, "start": 0.0, "end": d / 2,
					"text": "Hello, how can I help?", "confidence": 0.9,
					"words": []any{map[string]any{"word": "Hello", "start": 0.0, "end": 0.4, "confidence": 0.9, "lang": "en"}}},
				map[string]any{"id": 1, "speaker": "Customer", "channel": 1, "start": d / 2, "end": d,
					"text": "Beep.", "confidence": 0.8,
					"words": []any{map[string]any{"word": "Beep", "start": d / 2, "end": d/2 + 0.3, "confidence": 0.8, "lang": "en"}}},
			},
		},
	}
}

// FailMediaDownloads makes the next n downloads of existing media answer
// HTTP 500 (code 2, "Service temporarily unavailable"), as Meta's media
// servers sometimes do; n <= 0 stops failing.
func (s *Sim) FailMediaDownloads(n int) {
	s.mu.Lock()
	s.mediaFail = max(n, 0)
	s.mu.Unlock()
}
