//go:build linux

package media

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchSize is how many datagrams one recvmmsg/sendmmsg moves at most.
const batchSize = 64

// mmsghdr is struct mmsghdr of recvmmsg(2)/sendmmsg(2).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// batchIO reads and writes datagrams in batches (recvmmsg/sendmmsg) on one
// UDP socket through Go's netpoller. Not safe for concurrent use: the read
// side belongs to the read goroutine, the write side is used under
// fastSock.outMu.
type batchIO struct {
	rc syscall.RawConn
	v6 bool // AF_INET6 socket (IPv4 peers as mapped addresses)

	in      [batchSize]mmsghdr
	inIov   [batchSize]unix.Iovec
	inName  [batchSize]unix.RawSockaddrInet6
	inBuf   [][]byte
	n, next int
	// stamps: SO_TIMESTAMPNS is on, each datagram's arrival time is in
	// inCtl (Config.MeasureForwardDelay); outArr is the arrival time of
	// the datagram each queued one was forwarded from (0: not forwarded).
	stamps bool
	inCtl  [batchSize][stampSpace]byte
	outArr [batchSize]int64
	delay  *delayHist

	out     [batchSize]mmsghdr
	outIov  [batchSize]unix.Iovec
	outName [batchSize]unix.RawSockaddrInet6
	outBuf  [][]byte
	nout    int

	// counts, for SocketStats (atomics: flush runs under fastSock.outMu
	// in the read goroutine or the pacer)
	recvCalls, recvDatagrams, sendCalls, sendDatagrams atomic.Uint64

	// The raw-conn callbacks and their results, made once: a closure
	// made per call would be allocated per batch.
	readFn, writeFn func(fd uintptr) bool
	rn              int
	rerr            syscall.Errno
	wfrom           int
	wn              uintptr
	werr            syscall.Errno
}

// stampSpace is the control message space of one SCM_TIMESTAMPNS.
const stampSpace = 32 // CMSG_SPACE(sizeof(struct timespec)) on 64-bit

func newBatchIO(c *net.UDPConn, mtu int, delay *delayHist) *batchIO {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	la, _ := c.LocalAddr().(*net.UDPAddr)
	b := &batchIO{rc: rc, v6: la == nil || la.IP.To4() == nil || la.IP.IsUnspecified()}
	if delay != nil && unix.CmsgSpace(16) == stampSpace {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		}); err == nil && serr == nil {
			b.stamps, b.delay = true, delay
		}
	}
	b.readFn, b.writeFn = b.doRead, b.doWrite
	b.inBuf = make([][]byte, batchSize)
	b.outBuf = make([][]byte, batchSize)
	for i := range batchSize {
		b.inBuf[i] = make([]byte, mtu)
		b.outBuf[i] = make([]byte, mtu+64)
		b.inIov[i].Base = &b.inBuf[i][0]
		b.in[i].hdr.Name = (*byte)(unsafe.Pointer(&b.inName[i]))
		b.in[i].hdr.Iov = &b.inIov[i]
		b.in[i].hdr.Iovlen = 1
		b.outIov[i].Base = &b.outBuf[i][0]
		b.out[i].hdr.Name = (*byte)(unsafe.Pointer(&b.outName[i]))
		b.out[i].hdr.Iov = &b.outIov[i]
		b.out[i].hdr.Iovlen = 1
	}
	return b
}

// recv blocks (in the netpoller) until at least one datagram is read.
func (b *batchIO) recv() error {
	for i := range batchSize {
		b.inIov[i].SetLen(len(b.inBuf[i]))
		b.in[i].hdr.Namelen = unix.SizeofSockaddrInet6
		b.in[i].hdr.Flags = 0
		b.in[i].n = 0
		if b.stamps {
			b.in[i].hdr.Control = &b.inCtl[i][0]
			b.in[i].hdr.SetControllen(stampSpace)
		}
	}
	if err := b.rc.Read(b.readFn); err != nil {
		return err
	}
	if b.rerr != 0 {
		return b.rerr
	}
	b.n, b.next = b.rn, 0
	b.recvCalls.Add(1)
	b.recvDatagrams.Add(uint64(b.rn))
	return nil
}

func (b *batchIO) doRead(fd uintptr) bool {
	r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.in[0])), batchSize,
		unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN || e == unix.EINTR {
		return false
	}
	b.rn, b.rerr = int(r), e
	return true
}

func (b *batchIO) doWrite(fd uintptr) bool {
	b.wn, _, b.werr = unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.out[b.wfrom])),
		uintptr(b.nout-b.wfrom), unix.MSG_DONTWAIT, 0, 0)
	return b.werr != unix.EAGAIN && b.werr != unix.EINTR
}

// pop returns the next datagram of the current batch.
func (b *batchIO) pop() ([]byte, netip.AddrPort, bool) {
	if b.next >= b.n {
		return nil, netip.AddrPort{}, false
	}
	i := b.next
	b.next++
	return b.inBuf[i][:b.in[i].n], sockaddrToAddrPort(&b.inName[i]), true
}

// arrival is the kernel's arrival time (Unix ns) of the datagram pop
// returned last; 0 without timestamps.
func (b *batchIO) arrival() int64 {
	if !b.stamps || b.next == 0 {
		return 0
	}
	i := b.next - 1
	h := &b.in[i].hdr
	if h.Controllen < stampSpace {
		return 0
	}
	c := (*unix.Cmsghdr)(unsafe.Pointer(&b.inCtl[i][0]))
	if c.Level != unix.SOL_SOCKET || c.Type != unix.SCM_TIMESTAMPNS {
		return 0
	}
	ts := (*unix.Timespec)(unsafe.Pointer(&b.inCtl[i][unix.CmsgLen(0)]))
	return ts.Nano()
}

func sockaddrToAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	case unix.AF_INET6:
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
	}
	return netip.AddrPort{}
}

// queued reports whether sends wait for flush.
func (b *batchIO) queued() bool { return b.nout > 0 }

// queue copies one datagram for to into the send batch; false when full.
func (b *batchIO) queue(p []byte, to netip.AddrPort, arrival int64) bool {
	if b.nout == batchSize || len(p) > len(b.outBuf[b.nout]) {
		return false
	}
	i := b.nout
	b.outArr[i] = arrival
	copy(b.outBuf[i], p)
	b.outIov[i].SetLen(len(p))
	sa := &b.outName[i]
	port := to.Port()
	if b.v6 {
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: to.Addr().As16()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], port)
		b.out[i].hdr.Namelen = unix.SizeofSockaddrInet6
	} else {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: to.Addr().Unmap().As4()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], port)
		b.out[i].hdr.Namelen = unix.SizeofSockaddrInet4
	}
	b.nout++
	return true
}

// flush sends the queued datagrams (sendmmsg); a datagram the kernel
// refuses is dropped, as a failed sendto would be.
func (b *batchIO) flush() {
	b.wfrom = 0
	b.sendDatagrams.Add(uint64(b.nout))
	for b.wfrom < b.nout {
		b.sendCalls.Add(1)
		err := b.rc.Write(b.writeFn)
		switch {
		case err != nil:
			b.nout = 0
			return
		case b.werr != 0 || b.wn == 0:
			b.wfrom++ // skip the datagram that failed
		default:
			b.wfrom += int(b.wn)
		}
	}
	if b.delay != nil {
		now := time.Now().UnixNano()
		for _, a := range b.outArr[:b.nout] {
			if a != 0 {
				b.delay.observe(time.Duration(now - a))
			}
		}
	}
	b.nout = 0
}

func (b *batchIO) stats() SocketStats {
	return SocketStats{RecvCalls: b.recvCalls.Load(), RecvDatagrams: b.recvDatagrams.Load(),
		SendCalls: b.sendCalls.Load(), SendDatagrams: b.sendDatagrams.Load()}
}

// SetDontFragment sets the DF bit on every datagram c sends, without path
// MTU discovery (IP_PMTUDISC_PROBE: nothing is refused for a learned path
// MTU; our datagrams are RTP and DTLS flights of at most 1,200 bytes). For
// an unconnected UDP socket this also spares the kernel its shared IP ID
// generator, an atomic on a cache line all cores write, on every datagram
// (__ip_select_ident: ~3 % of the fast path's CPU). The fast path's socket,
// the load tool's peers and its bare relay set it alike.
func SetDontFragment(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var errs [2]error
	if err := rc.Control(func(fd uintptr) {
		errs[0] = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_PROBE)
		if la, _ := c.LocalAddr().(*net.UDPAddr); la != nil && la.IP.To4() == nil {
			errs[1] = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_PROBE)
		}
	}); err != nil {
		return err
	}
	return errors.Join(errs[:]...)
}

// stamped reports whether datagrams carry their kernel arrival time.
func (b *batchIO) stamped() bool { return b.stamps }
