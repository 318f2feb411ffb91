//go:build linux

package media

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
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

	out     [batchSize]mmsghdr
	outIov  [batchSize]unix.Iovec
	outName [batchSize]unix.RawSockaddrInet6
	outBuf  [][]byte
	nout    int

	// The raw-conn callbacks and their results, made once: a closure
	// made per call would be allocated per batch.
	readFn, writeFn func(fd uintptr) bool
	rn              int
	rerr            syscall.Errno
	wfrom           int
	wn              uintptr
	werr            syscall.Errno
}

func newBatchIO(c *net.UDPConn, mtu int) *batchIO {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	la, _ := c.LocalAddr().(*net.UDPAddr)
	b := &batchIO{rc: rc, v6: la == nil || la.IP.To4() == nil || la.IP.IsUnspecified()}
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
	}
	if err := b.rc.Read(b.readFn); err != nil {
		return err
	}
	if b.rerr != 0 {
		return b.rerr
	}
	b.n, b.next = b.rn, 0
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
func (b *batchIO) queue(p []byte, to netip.AddrPort) bool {
	if b.nout == batchSize || len(p) > len(b.outBuf[b.nout]) {
		return false
	}
	i := b.nout
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
	for b.wfrom < b.nout {
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
	b.nout = 0
}
