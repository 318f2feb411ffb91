//go:build !linux

package main

import (
	"errors"
	"net/netip"
)

// Light peers need IP_PKTINFO and recvmmsg/sendmmsg (Linux); elsewhere
// -peers pion is the only choice.
type lightSock struct{ port int }

var errNoLight = errors.New("light peers need linux (use -peers pion)")

func openLightSock() (*lightSock, error) { return nil, errNoLight }
func (s *lightSock) close() error        { return nil }
func (s *lightSock) recv() error         { return errNoLight }
func (s *lightSock) pop() ([]byte, [4]byte, netip.AddrPort, bool) {
	return nil, [4]byte{}, netip.AddrPort{}, false
}
func (s *lightSock) beginBatch()                                {}
func (s *lightSock) endBatch()                                  {}
func (s *lightSock) outSlot() []byte                            { return nil }
func (s *lightSock) queue([]byte, [4]byte, netip.AddrPort) bool { return false }
func (s *lightSock) sendOne([]byte, [4]byte, netip.AddrPort) error {
	return errNoLight
}

const defaultPeers = peersPion
