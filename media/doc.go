// Package media owns the audio path of every call: a Pion WebRTC bridge with
// one leg toward WhatsApp (Meta, ICE-lite) and one leg toward the agent's
// browser, forwarding Opus RTP both ways without transcoding.
//
// One Engine per process holds the shared Pion APIs, the optional ICE UDP
// mux (one UDP port for all calls), the DTLS certificate and a single pacer
// goroutine that, for every bridge, sends Opus silence toward WhatsApp while
// no agent audio flows, sends queued RFC 4733 DTMF, emits RTCP sender and
// receiver reports and runs the media watchdog. Each Bridge owns its two
// PeerConnections and the goroutines that read them; Close stops them all.
//
// Toward WhatsApp the gateway is a full ICE agent in the controlling role and
// the DTLS client (a=setup:active), offers/answers Opus and telephone-event
// only, sends exactly one SSRC, and keeps RTP sequence numbers and timestamps
// continuous across silence, agent audio, DTMF, prompts and agent leg
// replacement.
//
// Prompts (Ogg Opus, checked at load, a few built in) are played into the
// WhatsApp leg by the pacer without transcoding (Bridge.Play); Bridge.Hold
// loops hold music and stops forwarding both ways. Bridge.StartRecording
// taps both directions' Opus packets for a local recording.
//
// By default (Config.PacketPath PathFast) Pion does ICE, DTLS and SDP only:
// once a leg is connected, its SRTP/SRTCP is handled in batches in the one
// socket's read loop (fastpath.go); PathPion leaves every packet to Pion.
package media
