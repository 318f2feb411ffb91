package media

import (
	"io"
	"sync"

	"github.com/pion/transport/v5/packetio"
)

// rtpBufferLimit is the RTP read buffer per stream, as Pion's default.
const rtpBufferLimit = 1_000_000

// legBuffers is the SettingEngine.BufferFactory of one leg's PeerConnection.
// Pion's SRTP/SRTCP sessions write every decrypted packet of a stream into
// the buffer made here. RTP gets an ordinary packet buffer (read by the
// leg's RTP loop); RTCP gets an rtcpSink that handles each packet as it is
// written, so RTCP is always read without any goroutine blocked in
// RTPSender.Read / RTPReceiver.Read.
func (b *Bridge) legBuffers(l *leg) func(packetio.BufferPacketType, uint32) io.ReadWriteCloser {
	return func(t packetio.BufferPacketType, ssrc uint32) io.ReadWriteCloser {
		if t == packetio.RTCPBufferPacket {
			return &rtcpSink{b: b, l: l, ssrc: ssrc, closed: make(chan struct{})}
		}
		buf := packetio.NewBuffer()
		buf.SetLimitSize(rtpBufferLimit)
		return rtpBuffer{buf}
	}
}

// rtpBuffer adapts packetio.Buffer to io.ReadWriteCloser (with attributes),
// like Pion's own default.
type rtpBuffer struct{ *packetio.Buffer }

func (r rtpBuffer) Read(p []byte) (int, error) {
	n, _, err := r.Buffer.Read(p, nil)
	return n, err
}

func (r rtpBuffer) Write(p []byte) (int, error) { return r.Buffer.Write(p, nil) }

func (r rtpBuffer) ReadWithAttributes(p []byte, a packetio.Attributes) (int, packetio.Attributes, error) {
	return r.Buffer.Read(p, a)
}

func (r rtpBuffer) WriteWithAttributes(p []byte, a packetio.Attributes) (int, error) {
	return r.Buffer.Write(p, a)
}

// rtcpSink is the "buffer" of one SRTCP read stream (one SSRC of one leg).
// Pion's SRTCP session splits compound packets and writes each RTCP packet
// to the stream of every SSRC it is addressed to (an SR with a report block
// about our stream reaches both the remote's SSRC and ours), so a sink
// handles only what concerns its own SSRC: SRs sent by it, report blocks
// about it. Write runs in the SRTCP session's read goroutine and does not
// block. Nothing is buffered; Read blocks until Close.
type rtcpSink struct {
	b      *Bridge
	l      *leg
	ssrc   uint32
	once   sync.Once
	closed chan struct{}
}

// Write handles one decrypted RTCP packet.
func (s *rtcpSink) Write(p []byte) (int, error) {
	select {
	case <-s.closed:
		return 0, io.ErrClosedPipe
	default:
	}
	s.b.handleRTCP(s.l, s.ssrc, p)
	return len(p), nil
}

// Read returns io.EOF once the stream is closed: the packets were handled
// in Write.
func (s *rtcpSink) Read([]byte) (int, error) {
	<-s.closed
	return 0, io.EOF
}

// Close is idempotent.
func (s *rtcpSink) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}
