// Package agents owns the agent side of signaling: the versioned JSON
// protocol spoken over the agent websocket (docs/agent-protocol.md), agent
// tokens (JWT), and the Hub that authenticates sessions, tracks presence and
// delivers messages with one writer goroutine per socket. It knows nothing of
// calls: it hands every authenticated client message to a Handler.
package agents
