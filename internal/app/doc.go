// Package app wires callgw together by hand: it turns a Config into running
// parts (Redis or the embedded store, the Graph client or the built-in Cloud
// API simulator, the media engine, the permission tracker, the billing
// ledger, call control, the agent hub, the REST API and the web pages) and
// runs them until the context ends, draining calls first. cmd/callgw is a
// thin shell over it; end-to-end tests start it in-process.
package app
