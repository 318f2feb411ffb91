//go:build !linux

package media

import (
	"net"
	"net/netip"
)

// batchIO is Linux only (recvmmsg/sendmmsg); elsewhere the fast path reads
// and writes one datagram per system call.
type batchIO struct{}

func newBatchIO(*net.UDPConn, int) *batchIO { return nil }

func (*batchIO) recv() error                         { return nil }
func (*batchIO) pop() ([]byte, netip.AddrPort, bool) { return nil, netip.AddrPort{}, false }
func (*batchIO) queue([]byte, netip.AddrPort) bool   { return false }
func (*batchIO) queued() bool                        { return false }
func (*batchIO) flush()                              {}
