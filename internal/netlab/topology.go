package netlab

import (
	"fmt"
	"strings"
)

// NATKind is how a site's router translates its host.
type NATKind int

// NAT kinds.
const (
	NATUnknown NATKind = iota
	// NATOneToOne maps one public address to the host, forwarding only the
	// listed UDP and TCP ports inward (DNAT) and translating everything the
	// host sends to the public address (SNAT, ports kept): a cloud VM with
	// an elastic IP and a security group.
	NATOneToOne
	// NATEndpointIndependent masquerades keeping the source port: the same
	// mapping toward every destination (STUN finds it). Filtering is
	// conntrack's: only replies from addresses the host sent to.
	NATEndpointIndependent
	// NATSymmetric masquerades with fully-random ports: a new mapping for
	// every destination, so what STUN sees is useless to anyone else.
	NATSymmetric
	// NATUDPBlocked is NATEndpointIndependent with every UDP packet from the
	// host dropped: only TCP leaves (a strict corporate network).
	NATUDPBlocked
)

func (k NATKind) String() string {
	switch k {
	case NATOneToOne:
		return "1:1"
	case NATEndpointIndependent:
		return "endpoint-independent"
	case NATSymmetric:
		return "symmetric"
	case NATUDPBlocked:
		return "udp-blocked"
	}
	return "unknown"
}

// Internet is a "public" namespace that routes between sites and hosts
// public services on its loopback interface. Its addresses are in 198.18.0.0/15
// (RFC 2544 benchmarking), site i's public side is 198.18.i.0/24 and its
// private side 10.i.0.0/24; nothing leaves the Lab's namespaces.
type Internet struct {
	lab   *Lab
	NS    NS
	sites int
}

// Site is a host behind a NAT router.
type Site struct {
	Kind     NATKind
	Router   NS
	Host     NS
	HostIP   string // private address of the host
	WANIP    string // router's own public address
	PublicIP string // the host's public address (1:1) or the router's (masquerade)
}

// NewInternet creates the public namespace with services at svcIPs (each
// a /32 on the loopback interface, e.g. "198.18.0.10").
func (l *Lab) NewInternet(svcIPs ...string) *Internet {
	l.t.Helper()
	ns := l.NS("inet")
	var cidrs []string
	for _, ip := range svcIPs {
		cidrs = append(cidrs, ip+"/32")
	}
	l.Loopback(ns, cidrs...)
	return &Internet{lab: l, NS: ns}
}

// OneToOne is what NATOneToOne forwards inward.
type OneToOne struct {
	UDPPorts []int
	TCPPorts []int
}

// AddSite builds a router and a host behind it. fwd is used by NATOneToOne
// only.
func (in *Internet) AddSite(tag string, kind NATKind, fwd OneToOne) *Site {
	l := in.lab
	l.t.Helper()
	in.sites++
	i := in.sites
	r, h := l.NS(tag+"-r"), l.NS(tag)
	s := &Site{Kind: kind, Router: r, Host: h, HostIP: fmt.Sprintf("10.%d.0.2", i),
		WANIP: fmt.Sprintf("198.18.%d.2", i)}
	l.Link(in.NS, fmt.Sprintf("s%d", i), fmt.Sprintf("198.18.%d.1/24", i), r, "wan", s.WANIP+"/24")
	l.Link(r, "lan", fmt.Sprintf("10.%d.0.1/24", i), h, "eth0", s.HostIP+"/24")
	l.Route(r, "default", fmt.Sprintf("198.18.%d.1", i))
	l.Route(h, "default", fmt.Sprintf("10.%d.0.1", i))
	s.PublicIP = s.WANIP
	var rules string
	switch kind {
	case NATOneToOne:
		s.PublicIP = fmt.Sprintf("198.18.%d.10", i)
		l.Addr(r, "wan", s.PublicIP+"/32")
		var pre []string
		for _, p := range fwd.UDPPorts {
			pre = append(pre, fmt.Sprintf(`ip daddr %s udp dport %d dnat to %s`, s.PublicIP, p, s.HostIP))
		}
		for _, p := range fwd.TCPPorts {
			pre = append(pre, fmt.Sprintf(`ip daddr %s tcp dport %d dnat to %s`, s.PublicIP, p, s.HostIP))
		}
		// Hairpin: the host reaches its own public address (as on cloud
		// VMs with an elastic IP), so a doctor run there can test its
		// public URL.
		rules = fmt.Sprintf(`table ip nat {
	chain pre { type nat hook prerouting priority dstnat; policy accept;
		%s
	}
	chain post { type nat hook postrouting priority srcnat; policy accept;
		oifname "wan" ip saddr %s snat to %s
		oifname "lan" ct status dnat ip saddr %s masquerade
	}
}
`, strings.Join(pre, "\n\t\t"), s.HostIP, s.PublicIP, s.HostIP)
	case NATEndpointIndependent, NATUDPBlocked:
		rules = `table ip nat {
	chain post { type nat hook postrouting priority srcnat; policy accept; oifname "wan" masquerade; }
}
`
		if kind == NATUDPBlocked {
			rules += `table inet filter {
	chain lanout { type filter hook forward priority filter; policy accept; iifname "lan" meta l4proto udp drop; }
}
`
		}
	case NATSymmetric:
		rules = `table ip nat {
	chain post { type nat hook postrouting priority srcnat; policy accept; oifname "wan" masquerade fully-random; }
}
`
	default:
		l.t.Fatalf("netlab: unknown NAT kind %v", kind)
	}
	l.NFT(r, rules)
	return s
}
