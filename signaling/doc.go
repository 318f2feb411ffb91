// Package signaling owns call control: it takes Meta's calling webhooks
// (through signaling/webhook), keeps every live call's state machine, rings
// agents through signaling/agents, drives the media bridge and the Graph API
// (signaling/cloudapi) through small interfaces it declares here, and hands
// each finished call's record to billing. Live call state, webhook
// de-duplication and the first-accept-wins claim live in Redis so that
// retries, duplicates and several instances stay correct.
package signaling
