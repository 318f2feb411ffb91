//go:build !linux

package media

import (
	"net"
	"net/netip"
)

// batchIO is Linux only (recvmmsg/sendmmsg); elsewhere the fast path reads
// and writes one datagram per system call.
type batchIO struct{}

func newBatchIO(*net.UDPConn, int, *delayHist) *batchIO { return nil }

func (*batchIO) recv() error                              { return nil }
func (*batchIO) pop() ([]byte, netip.AddrPort, bool)      { return nil, netip.AddrPort{}, false }
func (*batchIO) queue([]byte, netip.AddrPort, int64) bool { return false }
func (*batchIO) arrival() int64                           { return 0 }
func (*batchIO) queued() bool                             { return false }
func (*batchIO) flush()                                   {}

func (*batchIO) stats() SocketStats { return SocketStats{} }

// SetDontFragment is Linux only (IP_PMTUDISC_PROBE); elsewhere it does
// nothing.
func SetDontFragment(*net.UDPConn) error { return nil }

func (*batchIO) stamped() bool { return false }
