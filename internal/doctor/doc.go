// Package doctor checks a callgw configuration against the network before
// it meets Meta: the public address the media port is seen from (STUN), the
// media UDP port reachable from outside (a datagram sent through a TURN
// relay), TURN credentials accepted (an allocation on each TURN URL), the
// Graph API reachable with a valid token and number id, and the webhook URL
// answering Meta's verification. Each check says what to fix. `callgw
// doctor` prints the report; /readyz?verbose serves it.
package doctor
