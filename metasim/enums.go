package metasim

// CallState is a point in a simulated call's life. States are reached, not
// left: a call that pre-accepts, accepts and connects has reached all three.
type CallState uint8

const (
	StateUnknown CallState = iota
	Ringing                // inbound: connect webhook delivered; outbound: RINGING status sent
	PreAccepted            // inbound: the business's pre_accept answer was applied
	Accepted               // inbound: accept received; outbound: the user answered
	Connected              // media ICE + DTLS are up
	Ended                  // the call is over
	numStates
)

var stateNames = [...]string{"unknown", "ringing", "pre_accepted", "accepted", "connected", "ended"}

func (s CallState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// PermissionReply is how a simulated user answers a call permission request.
// The zero value behaves like PermissionAccept.
type PermissionReply uint8

const (
	PermissionUnknown         PermissionReply = iota
	PermissionAccept                          // temporary permission (Limits.TemporaryValidity)
	PermissionAcceptPermanent                 // permanent permission
	PermissionReject                          // refuses
	PermissionIgnore                          // never answers
)

var permissionNames = [...]string{"unknown", "accept", "accept_permanent", "reject", "ignore"}

func (p PermissionReply) String() string {
	if int(p) < len(permissionNames) {
		return permissionNames[p]
	}
	return "unknown"
}

// CallAnswer is how a simulated user treats a business-initiated call.
// The zero value behaves like Answer.
type CallAnswer uint8

const (
	AnswerUnknown CallAnswer = iota
	Answer                   // picks up after UserBehavior.AnswerAfter
	Decline                  // declines after UserBehavior.AnswerAfter
	NoAnswer                 // lets it ring until Config.RingTimeout or the business gives up
)

var answerNames = [...]string{"unknown", "answer", "decline", "no_answer"}

func (a CallAnswer) String() string {
	if int(a) < len(answerNames) {
		return answerNames[a]
	}
	return "unknown"
}

// direction of a simulated call.
type direction uint8

const (
	userInitiated direction = iota + 1
	businessInitiated
)

func (d direction) String() string {
	if d == businessInitiated {
		return "BUSINESS_INITIATED"
	}
	return "USER_INITIATED"
}
