package media

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/pion/webrtc/v4"
)

// Defaults applied by NewEngine to zero-valued Config fields.
const (
	DefaultMediaTimeout           = 35 * time.Second
	DefaultMediaStartTimeout      = 25 * time.Second
	DefaultICEDisconnectedTimeout = 4 * time.Second
	DefaultICEFailedTimeout       = 8 * time.Second
	DefaultICEKeepalive           = 2 * time.Second
	DefaultReceiveMTU             = 1500
	DefaultSocketBuffer           = 4 << 20
)

// PacketPath selects how established media packets are handled.
type PacketPath uint8

const (
	// PathDefault is PathFast, or PathPion when a port range
	// (PortMin/PortMax) is configured: the fast path serves every call on
	// one socket.
	PathDefault PacketPath = iota
	// PathPion: every leg's SRTP/SRTCP goes through Pion's per-connection
	// goroutines and buffers (two stock PeerConnections per call).
	PathPion
	// PathFast: one UDP socket for every call; once a leg is connected its
	// SRTP/SRTCP is handled in the socket's read loop (see fastpath.go).
	// Pion still does ICE, DTLS and SDP.
	PathFast
)

// String returns the path's name as used in flags.
func (p PacketPath) String() string {
	switch p {
	case PathDefault:
		return "default"
	case PathPion:
		return "pion"
	case PathFast:
		return "fast"
	default:
		return "unknown"
	}
}

// ParsePacketPath parses "default", "pion" or "fast".
func ParsePacketPath(s string) (PacketPath, error) {
	for _, p := range []PacketPath{PathDefault, PathPion, PathFast} {
		if s == p.String() {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w: packet path %q (want default, pion or fast)", ErrInvalidConfig, s)
}

// Config configures the Engine. The zero value is usable (any port, no
// public IP, default timeouts).
type Config struct {
	// PublicIPs are 1:1 NAT IPs advertised as host candidates
	// (SetNAT1To1IPs); empty = none.
	PublicIPs []string
	// UDPPort > 0 serves ALL calls on this one UDP port (ICE UDP mux).
	UDPPort int
	// PortMin, PortMax bound the ephemeral UDP ports used when UDPPort == 0;
	// 0,0 = any port.
	PortMin, PortMax uint16
	// LoopbackOnly (tests/demo) gathers on 127.0.0.1 only, with loopback
	// candidates included.
	LoopbackOnly bool
	// MediaTimeout (mid-call): once the watchdog is armed
	// (Bridge.ArmWatchdog) and the WhatsApp leg has received RTP, no RTP
	// for this long fires Events.OnMediaTimeout (once). Default 35s, just
	// above Meta's 30 s so that Meta's own end (138022) usually explains it.
	MediaTimeout time.Duration
	// MediaStartTimeout: once armed, no RTP at all from the WhatsApp leg
	// for this long after arming fires Events.OnMediaTimeout. Default 25s
	// (Meta's is 20 s).
	MediaStartTimeout time.Duration
	// SilenceBeforeAccept lets a user-initiated call's WhatsApp leg carry
	// Opus silence (and our RTCP) before Bridge.StartWhatsAppMedia. Off by
	// default: Meta's client takes the first media packet as "answered".
	SilenceBeforeAccept bool
	// ICEDisconnectedTimeout, ICEFailedTimeout and ICEKeepalive tune Pion's
	// ICE agent (SetICETimeouts). Defaults 4s, 8s, 2s (faster failure
	// detection than Pion's 5s/25s).
	ICEDisconnectedTimeout time.Duration
	ICEFailedTimeout       time.Duration
	ICEKeepalive           time.Duration
	// ReceiveMTU is the largest RTP/RTCP packet read (SetReceiveMTU).
	// Default 1500.
	ReceiveMTU int
	// SocketBuffer is the kernel receive and send buffer asked for the
	// single UDP port (UDPPort > 0) that carries every call; the kernel caps
	// it at net.core.rmem_max / wmem_max (raise those on a busy host).
	// Default 4 MiB.
	SocketBuffer int
	// AgentICEServers (STUN/TURN) are given to agent legs only, for agents
	// behind strict NATs; WhatsApp legs need none. Empty = none.
	AgentICEServers []webrtc.ICEServer
	// PacketPath: PathFast serves every call on one UDP socket (UDPPort, or
	// an ephemeral port when 0; not with a port range) and handles
	// established SRTP/SRTCP itself; PathPion leaves every packet to Pion's
	// per-connection goroutines. Default PathFast (PathPion with a port
	// range).
	PacketPath PacketPath
	// MeasureForwardDelay (PathFast on Linux): the socket asks the kernel
	// for each datagram's arrival time (SO_TIMESTAMPNS) and the engine
	// keeps a histogram of how long each forwarded packet spent in the
	// gateway, from its arrival in the socket's queue to the return of the
	// sendmmsg that sent it on (Engine.ForwardDelay). Off by default: it
	// costs a timestamp per datagram. cmd/callgw-load turns it on.
	MeasureForwardDelay bool
	// Logger receives the package's and Pion's logs. Nil discards them.
	Logger *slog.Logger
}

// Validate reports the first invalid setting, wrapping ErrInvalidConfig.
// Zero values are valid (they mean "default").
func (c Config) Validate() error {
	for _, ip := range c.PublicIPs {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("%w: public ip %q is not an IP address", ErrInvalidConfig, ip)
		}
	}
	if c.UDPPort < 0 || c.UDPPort > 65535 {
		return fmt.Errorf("%w: udp port %d out of range", ErrInvalidConfig, c.UDPPort)
	}
	if (c.PortMin == 0) != (c.PortMax == 0) {
		return fmt.Errorf("%w: port range needs both min and max (got %d-%d)", ErrInvalidConfig, c.PortMin, c.PortMax)
	}
	if c.PortMin > c.PortMax {
		return fmt.Errorf("%w: port min %d > max %d", ErrInvalidConfig, c.PortMin, c.PortMax)
	}
	if c.PacketPath > PathFast {
		return fmt.Errorf("%w: packet path %d unknown", ErrInvalidConfig, c.PacketPath)
	}
	if c.PacketPath == PathFast && c.PortMin != 0 {
		return fmt.Errorf("%w: the fast packet path uses one udp port, not a range", ErrInvalidConfig)
	}
	if c.UDPPort > 0 && c.PortMin != 0 {
		return fmt.Errorf("%w: set either udp port or a port range, not both", ErrInvalidConfig)
	}
	for name, d := range map[string]time.Duration{
		"media timeout":            c.MediaTimeout,
		"media start timeout":      c.MediaStartTimeout,
		"ice disconnected timeout": c.ICEDisconnectedTimeout,
		"ice failed timeout":       c.ICEFailedTimeout,
		"ice keepalive":            c.ICEKeepalive,
	} {
		if d < 0 {
			return fmt.Errorf("%w: %s %v is negative", ErrInvalidConfig, name, d)
		}
	}
	if c.SocketBuffer < 0 {
		return fmt.Errorf("%w: socket buffer %d is negative", ErrInvalidConfig, c.SocketBuffer)
	}
	if c.ReceiveMTU != 0 && (c.ReceiveMTU < 576 || c.ReceiveMTU > 9000) {
		return fmt.Errorf("%w: receive mtu %d outside 576..9000", ErrInvalidConfig, c.ReceiveMTU)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.MediaTimeout == 0 {
		c.MediaTimeout = DefaultMediaTimeout
	}
	if c.MediaStartTimeout == 0 {
		c.MediaStartTimeout = DefaultMediaStartTimeout
	}
	if c.ICEDisconnectedTimeout == 0 {
		c.ICEDisconnectedTimeout = DefaultICEDisconnectedTimeout
	}
	if c.ICEFailedTimeout == 0 {
		c.ICEFailedTimeout = DefaultICEFailedTimeout
	}
	if c.ICEKeepalive == 0 {
		c.ICEKeepalive = DefaultICEKeepalive
	}
	if c.ReceiveMTU == 0 {
		c.ReceiveMTU = DefaultReceiveMTU
	}
	if c.SocketBuffer == 0 {
		c.SocketBuffer = DefaultSocketBuffer
	}
	if c.PacketPath == PathDefault {
		c.PacketPath = PathFast
		if c.PortMin != 0 {
			c.PacketPath = PathPion
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
