// Package web owns callgw's browser pages: the agent softphone (/agent) and
// the supervisor dashboard (/supervisor). The pages are plain HTML, CSS and
// JavaScript modules embedded in the binary with go:embed (no build step);
// they speak the agent protocol (docs/agent-protocol.md) over /ws/agent and
// read the REST API under /api/v1. Handler serves them with cache headers
// and a strict Content-Security-Policy (no inline script or style).
package web
