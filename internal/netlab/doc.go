// Package netlab builds real networks for tests out of Linux network
// namespaces: veth links, routes and nftables NAT rules (1:1, endpoint-
// independent masquerade, symmetric fully-random masquerade, UDP-blocking
// firewalls), and runs processes inside them (coturn, or the test binary
// itself re-executed in a role: gateway, agent, Meta). Every namespace of a
// Lab is named after the test process, removed by t.Cleanup even when the
// test fails, and swept by the next run if the process was killed. Traffic
// never leaves the namespaces the Lab created.
//
// It needs root, ip(8) and nft(8) (Debian iproute2, nftables); Check tells
// why a machine cannot run it and New skips the test with that reason.
package netlab
