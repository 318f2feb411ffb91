package signaling

import (
	"context"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/callgw/callgw/billing"
	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/media"
	"github.com/callgw/callgw/permissions"
	"github.com/callgw/callgw/signaling/cloudapi"
)

// Graph is what signaling needs from Meta's Graph API (signaling/cloudapi).
type Graph interface {
	PreAccept(ctx context.Context, callID, answerSDP string) error
	Accept(ctx context.Context, callID, answerSDP, bizOpaque string) error
	Reject(ctx context.Context, callID string) error
	Terminate(ctx context.Context, callID string) error
}

// Dialer places business-initiated calls and sends the messages that ask
// for permission (cloudapi). Users are a number and/or a BSUID.
type Dialer interface {
	ConnectUser(ctx context.Context, r cloudapi.ConnectRequest) (callID string, err error)
	SendPermissionRequest(ctx context.Context, u cloudapi.User, bodyText string) (messageID string, err error)
	SendPermissionTemplate(ctx context.Context, u cloudapi.User, t cloudapi.TemplateRef, bodyParams []string) (messageID string, err error)
	SendCallButton(ctx context.Context, u cloudapi.User, b cloudapi.CallButton) (messageID string, err error)
}

// LivePermissions is Meta's live call_permissions, cached and rate limited
// (cloudapi.PermissionsReader). It answers an error wrapping
// cloudapi.ErrRateLimitedLocally rather than exceed Meta's 5 requests/s.
type LivePermissions interface {
	Get(ctx context.Context, u cloudapi.User) (*cloudapi.Permission, error)
	Invalidate(u cloudapi.User)
}

// Media builds a bridge per call (media.Engine).
type Media interface {
	NewBridge(id string, ev media.Events) (Bridge, error)
}

// Bridge is one call's media (media.Bridge).
type Bridge interface {
	AnswerWhatsApp(ctx context.Context, offer string) (string, error)
	OfferWhatsApp(ctx context.Context) (string, error)
	SetWhatsAppAnswer(answer string) error
	OfferAgent(ctx context.Context) (string, error)
	SetAgentAnswer(answer string) error
	AddAgentCandidate(c webrtc.ICECandidateInit) error
	SendDTMF(digits string) error
	// StartWhatsAppMedia lets RTP flow toward WhatsApp: before it, none is
	// sent (Meta's client takes the first packet as "answered").
	StartWhatsAppMedia() error
	// ArmWatchdog starts the no-media watchdog (at accept 200 or ACCEPTED).
	ArmWatchdog() error
	// Diagnose says why a leg carries no media (a bounded cause), before
	// the bridge is closed.
	Diagnose(agentLeg bool) string
	Stats() media.Stats
	Close() error
	// Play plays prompts to the WhatsApp user (looped with o.Loop),
	// replacing any playback; the agent's audio is not forwarded toward
	// WhatsApp meanwhile (CONTRACT §1). Needs StartWhatsAppMedia.
	Play(ps []*media.Prompt, o media.PlayOptions) (<-chan struct{}, error)
	// StopPlayback stops prompts (no-op when none plays).
	StopPlayback()
}

// Recorder keeps finished call records (billing's ledger). It must be
// idempotent per call id.
type Recorder interface {
	Record(ctx context.Context, rec call.Record) error
}

// Messages meters the messages the gateway sends (billing's per-message
// meter): Sent when Meta took the message, Status for each status webhook
// with Meta's pricing. Both are idempotent on the message id.
type Messages interface {
	Sent(ctx context.Context, m billing.MessageSent) (billing.MessageCharge, error)
	Status(ctx context.Context, s billing.MessageStatus) (billing.MessageCharge, error)
}

// Quoter prices a live business-initiated call pulse by pulse (billing).
type Quoter interface {
	LiveQuote(ctx context.Context, userPhone, userID string, start time.Time) (billing.Quote, error)
}

// Permissions is the business-initiated call permission tracker.
type Permissions interface {
	State(ctx context.Context, p permissions.Pair) (permissions.Decision, error)
	RecordRequest(ctx context.Context, p permissions.Pair, requestID string) (permissions.Decision, error)
	UndoRequest(ctx context.Context, p permissions.Pair, requestID string) error
	CheckCall(ctx context.Context, p permissions.Pair) (permissions.Decision, error)
	RecordCall(ctx context.Context, p permissions.Pair, callID string, o permissions.CallResult) (permissions.Decision, error)
	RecordInbound(ctx context.Context, p permissions.Pair, callID string, connected bool) (permissions.Decision, error)
	Grant(ctx context.Context, p permissions.Pair, g permissions.Grant) (permissions.Decision, error)
	Revoke(ctx context.Context, p permissions.Pair, src permissions.Source, id string) (permissions.Decision, error)
	MetaRefused(ctx context.Context, p permissions.Pair, code int, nextAllowed time.Time) (permissions.Decision, error)
}
