package media

import (
	"strings"
	"sync/atomic"

	"github.com/pion/webrtc/v4"
)

// binding is what Pion hands a local track once negotiation is done: where
// to write, our SSRC and the negotiated payload types.
type binding struct {
	w      webrtc.TrackLocalWriter
	id     string
	ssrc   uint32
	ptOpus uint8
	ptTE   uint8 // 0: telephone-event not negotiated
	teRate uint32
}

// payloadType is the negotiated payload type for an Opus (audio) or
// telephone-event (te) packet; false when the binding cannot carry it.
func (b *binding) payloadType(audio, te bool) (uint8, bool) {
	switch {
	case audio:
		return b.ptOpus, true
	case te && b.ptTE != 0:
		return b.ptTE, true
	}
	return 0, false
}

// outTrack is a minimal webrtc.TrackLocal: unlike TrackLocalStaticRTP it
// lets us write any negotiated payload type (Opus and telephone-event) on
// the one SSRC, and it writes header+payload through the allocation-free
// TrackLocalWriter.WriteRTP path.
type outTrack struct {
	id, streamID string
	b            atomic.Pointer[binding]
}

func newOutTrack(id, streamID string) *outTrack { return &outTrack{id: id, streamID: streamID} }

// Bind implements webrtc.TrackLocal.
func (t *outTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	var opus webrtc.RTPCodecParameters
	b := &binding{w: ctx.WriteStream(), id: ctx.ID(), ssrc: uint32(ctx.SSRC())}
	found := false
	for _, c := range ctx.CodecParameters() {
		switch {
		case strings.EqualFold(c.MimeType, webrtc.MimeTypeOpus) && !found:
			opus, found = c, true
			b.ptOpus = uint8(c.PayloadType)
		case strings.EqualFold(c.MimeType, mimeTelephoneEvent) && b.ptTE == 0:
			b.ptTE = uint8(c.PayloadType)
			b.teRate = c.ClockRate
		}
	}
	if !found {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	t.b.Store(b)
	return opus, nil
}

// Unbind implements webrtc.TrackLocal.
func (t *outTrack) Unbind(ctx webrtc.TrackLocalContext) error {
	if b := t.b.Load(); b != nil && b.id == ctx.ID() {
		t.b.CompareAndSwap(b, nil)
	}
	return nil
}

// ID implements webrtc.TrackLocal.
func (t *outTrack) ID() string { return t.id }

// RID implements webrtc.TrackLocal.
func (t *outTrack) RID() string { return "" }

// StreamID implements webrtc.TrackLocal.
func (t *outTrack) StreamID() string { return t.streamID }

// Kind implements webrtc.TrackLocal.
func (t *outTrack) Kind() webrtc.RTPCodecType { return webrtc.RTPCodecTypeAudio }
