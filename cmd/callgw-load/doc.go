// Command callgw-load is a load generator for the media bridge over
// loopback. It starts a media.Engine on one UDP port and N simulated calls,
// each a Meta-like ICE-lite Pion peer and a browser-like agent peer playing
// Opus (an embedded 440 Hz tone) both ways through the bridge for the given
// duration, then reports calls established, packets sent / forwarded /
// received per direction, loss, one-way latency p50/p99, CPU (getrusage),
// heap and goroutines per call. With -direct the same peers are connected
// to each other without the bridge: the baseline to subtract, since the
// peers run in the same process.
//
//	go run ./cmd/callgw-load -calls 100 -duration 20s -ramp 5s
//	go run ./cmd/callgw-load -calls 100 -duration 20s -ramp 5s -direct
package main
