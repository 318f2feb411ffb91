// Command callgw-load is a load generator for the media bridge over
// loopback, in two roles that run as two processes so the gateway can be
// measured alone:
//
//   - gateway: a media.Engine on one UDP port and a small loopback HTTP
//     control API (create a bridge, exchange SDP, wait for both legs, close,
//     report the process's CPU, RSS, heap, goroutines and engine counters);
//   - peers: N simulated calls, each a Meta-like ICE-lite Pion peer and a
//     browser-like agent peer playing Opus (an embedded 440 Hz tone) both
//     ways through the gateway, bridged through the control API; it reports
//     calls established, packets sent / forwarded / received per direction,
//     loss, one-way latency p50/p99, its own CPU and the gateway's.
//
// Without a role both run in one process (the gateway in goroutines, still
// through the control API); -direct connects the peers to each other
// without the bridge (baseline).
//
//	taskset -c 0 callgw-load gateway -ctl 127.0.0.1:7480 -port 34780 &
//	taskset -c 1 callgw-load peers -ctl 127.0.0.1:7480 -calls 300 -duration 10s -ramp 15s
//	go run ./cmd/callgw-load -calls 100 -duration 10s -ramp 5s
package main
