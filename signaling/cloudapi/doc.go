// Package cloudapi owns callgw's side of Meta's WhatsApp Cloud API (Graph
// API): the calling actions (pre_accept, accept, reject, terminate, connect),
// the call-permission request message, the call_permissions query and the
// calling settings. It speaks Meta's wire format exactly, maps Graph errors to
// typed errors with clear reasons, and retries only what is safe to repeat.
//
// It holds no call state: the call controller in package signaling decides
// what to send and when.
package cloudapi
