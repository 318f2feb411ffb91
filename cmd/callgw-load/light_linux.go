//go:build linux

package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"unsafe"

	"github.com/callgw/callgw/media"
	"golang.org/x/sys/unix"
)

// lightBatch is how many datagrams one recvmmsg/sendmmsg moves at most.
const lightBatch = 64

// pktinfoSpace is the control buffer of one datagram: one IP_PKTINFO.
var pktinfoSpace = unix.CmsgSpace(unix.SizeofInet4Pktinfo)

type lightMsg struct {
	hdr unix.Msghdr
	n   uint32
}

// lightSock is the light peers' one UDP socket (0.0.0.0, every 127.64.x.y
// address of the endpoints), read and written in batches with the
// endpoint's address in IP_PKTINFO. The receive side belongs to the reader
// goroutine, the batch send side to the player; sendOne (Pion's STUN and
// DTLS) has its own header under a lock.
type lightSock struct {
	conn *net.UDPConn
	rc   syscall.RawConn
	port int

	in     [lightBatch]lightMsg
	inIov  [lightBatch]unix.Iovec
	inName [lightBatch]unix.RawSockaddrInet4
	inCtl  [][]byte
	inBuf  [][]byte
	n, nx  int
	readFn func(fd uintptr) bool
	rn     int
	rerr   syscall.Errno

	out     [lightBatch]lightMsg
	outIov  [lightBatch]unix.Iovec
	outName [lightBatch]unix.RawSockaddrInet4
	outCtl  [][]byte
	outBuf  [][]byte
	nout    int
	writeFn func(fd uintptr) bool
	wfrom   int
	wn      uintptr
	werr    syscall.Errno

	oneMu   sync.Mutex
	one     unix.Msghdr
	oneIov  unix.Iovec
	oneName unix.RawSockaddrInet4
	oneCtl  []byte
	oneFn   func(fd uintptr) bool
	oneErr  syscall.Errno
}

func openLightSock() (*lightSock, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		return nil, fmt.Errorf("light peers: %w", err)
	}
	_ = conn.SetReadBuffer(8 << 20)
	_ = conn.SetWriteBuffer(8 << 20)
	_ = media.SetDontFragment(conn)
	rc, err := conn.SyscallConn()
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("light peers: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
	}); err != nil || serr != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("light peers: IP_PKTINFO: %v %v", err, serr)
	}
	s := &lightSock{conn: conn, rc: rc, port: conn.LocalAddr().(*net.UDPAddr).Port}
	s.readFn, s.writeFn, s.oneFn = s.doRead, s.doWrite, s.doOne
	s.inCtl, s.inBuf = make([][]byte, lightBatch), make([][]byte, lightBatch)
	s.outCtl, s.outBuf = make([][]byte, lightBatch), make([][]byte, lightBatch)
	for i := range lightBatch {
		s.inBuf[i], s.inCtl[i] = make([]byte, 1600), make([]byte, pktinfoSpace)
		s.inIov[i].Base = &s.inBuf[i][0]
		s.in[i].hdr.Name = (*byte)(unsafe.Pointer(&s.inName[i]))
		s.in[i].hdr.Iov, s.in[i].hdr.Iovlen = &s.inIov[i], 1
		s.in[i].hdr.Control = &s.inCtl[i][0]

		s.outBuf[i], s.outCtl[i] = make([]byte, 1600), make([]byte, pktinfoSpace)
		s.outIov[i].Base = &s.outBuf[i][0]
		s.out[i].hdr.Name = (*byte)(unsafe.Pointer(&s.outName[i]))
		s.out[i].hdr.Namelen = unix.SizeofSockaddrInet4
		s.out[i].hdr.Iov, s.out[i].hdr.Iovlen = &s.outIov[i], 1
		s.out[i].hdr.Control = &s.outCtl[i][0]
		s.out[i].hdr.SetControllen(pktinfoSpace)
		putPktinfoHdr(s.outCtl[i])
	}
	s.oneCtl = make([]byte, pktinfoSpace)
	putPktinfoHdr(s.oneCtl)
	s.one.Name = (*byte)(unsafe.Pointer(&s.oneName))
	s.one.Namelen = unix.SizeofSockaddrInet4
	s.one.Iov, s.one.Iovlen = &s.oneIov, 1
	s.one.Control = &s.oneCtl[0]
	s.one.SetControllen(pktinfoSpace)
	return s, nil
}

func putPktinfoHdr(b []byte) {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
}

// setSrc writes the source address into a control buffer made by
// putPktinfoHdr.
func setSrc(ctl []byte, src [4]byte) {
	pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&ctl[unix.CmsgLen(0)]))
	pi.Ifindex, pi.Spec_dst, pi.Addr = 0, src, [4]byte{}
}

func putName(sa *unix.RawSockaddrInet4, to netip.AddrPort) {
	sa.Family = unix.AF_INET
	sa.Addr = to.Addr().Unmap().As4()
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], to.Port())
}

func (s *lightSock) close() error { return s.conn.Close() }

// recv blocks until at least one datagram is read.
func (s *lightSock) recv() error {
	for i := range lightBatch {
		s.inIov[i].SetLen(len(s.inBuf[i]))
		s.in[i].hdr.Namelen = unix.SizeofSockaddrInet4
		s.in[i].hdr.SetControllen(pktinfoSpace)
		s.in[i].hdr.Flags = 0
		s.in[i].n = 0
	}
	if err := s.rc.Read(s.readFn); err != nil {
		return err
	}
	if s.rerr != 0 {
		return s.rerr
	}
	s.n, s.nx = s.rn, 0
	return nil
}

func (s *lightSock) doRead(fd uintptr) bool {
	r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&s.in[0])), lightBatch,
		unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN || e == unix.EINTR {
		return false
	}
	s.rn, s.rerr = int(r), e
	return true
}

// pop returns the next datagram of the batch: payload, the address it was
// sent to, and its source.
func (s *lightSock) pop() (pkt []byte, dst [4]byte, from netip.AddrPort, ok bool) {
	for s.nx < s.n {
		i := s.nx
		s.nx++
		m := &s.in[i].hdr
		if m.Controllen < uint64(unix.CmsgLen(unix.SizeofInet4Pktinfo)) {
			continue
		}
		h := (*unix.Cmsghdr)(unsafe.Pointer(&s.inCtl[i][0]))
		if h.Level != unix.IPPROTO_IP || h.Type != unix.IP_PKTINFO {
			continue
		}
		pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&s.inCtl[i][unix.CmsgLen(0)]))
		sa := &s.inName[i]
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return s.inBuf[i][:s.in[i].n], pi.Addr, netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port), true
	}
	return nil, [4]byte{}, netip.AddrPort{}, false
}

// beginBatch and endBatch bracket the player's sends.
func (s *lightSock) beginBatch() { s.nout = 0 }
func (s *lightSock) endBatch()   { s.flush() }

// outSlot is the buffer the next queued datagram is built in (flushing a
// full batch first).
func (s *lightSock) outSlot() []byte {
	if s.nout == lightBatch {
		s.flush()
	}
	return s.outBuf[s.nout][:0]
}

// queue adds p (built in outSlot, or copied) from src to to.
func (s *lightSock) queue(p []byte, src [4]byte, to netip.AddrPort) bool {
	if s.nout == lightBatch {
		s.flush()
	}
	i := s.nout
	if len(p) > len(s.outBuf[i]) {
		return false
	}
	if len(p) > 0 && &p[0] != &s.outBuf[i][0] {
		copy(s.outBuf[i], p)
	}
	s.outIov[i].SetLen(len(p))
	putName(&s.outName[i], to)
	setSrc(s.outCtl[i], src)
	s.nout++
	return true
}

func (s *lightSock) doWrite(fd uintptr) bool {
	s.wn, _, s.werr = unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.out[s.wfrom])),
		uintptr(s.nout-s.wfrom), unix.MSG_DONTWAIT, 0, 0)
	return s.werr != unix.EAGAIN && s.werr != unix.EINTR
}

func (s *lightSock) flush() {
	s.wfrom = 0
	for s.wfrom < s.nout {
		err := s.rc.Write(s.writeFn)
		switch {
		case err != nil:
			s.nout = 0
			return
		case s.werr != 0 || s.wn == 0:
			s.wfrom++ // drop the datagram the kernel refused
		default:
			s.wfrom += int(s.wn)
		}
	}
	s.nout = 0
}

// sendOne sends one datagram from src (Pion's STUN and DTLS).
func (s *lightSock) sendOne(p []byte, src [4]byte, to netip.AddrPort) error {
	if len(p) == 0 {
		return nil
	}
	s.oneMu.Lock()
	defer s.oneMu.Unlock()
	s.oneIov.Base = &p[0]
	s.oneIov.SetLen(len(p))
	putName(&s.oneName, to)
	setSrc(s.oneCtl, src)
	if err := s.rc.Write(s.oneFn); err != nil {
		return err
	}
	s.oneIov.Base = nil
	if s.oneErr != 0 {
		return s.oneErr
	}
	return nil
}

func (s *lightSock) doOne(fd uintptr) bool {
	_, _, s.oneErr = unix.RawSyscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&s.one)), unix.MSG_DONTWAIT)
	return s.oneErr != unix.EAGAIN && s.oneErr != unix.EINTR
}

const defaultPeers = peersLight
