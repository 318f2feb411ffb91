// Package mediadiag says why a media leg carries no audio, from what its
// Pion PeerConnection saw (GetStats: candidate pairs, connectivity checks
// sent, received and answered, ICE and DTLS state) and how many RTP packets
// the leg received. Causes are a small closed set so they can label a
// metric: callgw_media_failures_total{leg,cause}. The media package calls
// Diagnose when a leg fails or its no-media watchdog fires (see README for
// the hook).
package mediadiag
