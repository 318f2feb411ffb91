// Package routing decides who takes a call, over state kept in Redis so
// that every instance of a cluster decides alike: which agents of a team
// to ring (ring_all, round_robin, longest_idle) with short reservations so
// two instances never offer one agent two calls at once; a queue per team
// (position, longest-waiting first, max_wait to overflow or missed,
// max_size); and callback tasks for missed calls (one open task per user
// and team, claimed by exactly one agent, closed when the user is reached).
//
// It decides; it does not ring, play audio or end calls: the call
// controller does, with what the Router returns. Teams come from a
// config.Config, replaced on reload with SetConfig.
//
// Keys: agent state shared by every team (reservations, idle-since,
// round-robin cursors) is under one hash tag, {route:agents}, because an
// agent may be in several teams and a pick must check and reserve them
// atomically; queues and tasks are under one hash tag per team,
// {route:team:<id>}. Every script touches one slot only, so Redis Cluster
// works.
package routing
