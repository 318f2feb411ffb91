package lifecycle

import (
	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/signaling/cloudapi"
)

// Answered reports whether the user and the business were connected, the
// way the reference defines it: accept returned 200 (user-initiated),
// ACCEPTED was seen (business-initiated), or Meta's terminate carries a
// start_time or a positive duration. A connect webhook never means answered.
func Answered(c Call) bool {
	return c.PickedUp || !c.Rec.MetaStart.IsZero() || c.Rec.MetaDuration > 0
}

// Conclude turns what is known of a finished call into its outcome and end
// reason. It is the only place that decides them.
func Conclude(c Call) (call.Outcome, call.EndReason) {
	code := c.Rec.ErrorCode
	reason := reasonOf(c.Cause, code)
	if c.GatewayAnswered && c.PickedUp && c.Rec.Agent == "" {
		// Answered by callgw only (the caller waited; no agent took it):
		// a missed call, whatever Meta's figures say.
		switch {
		case c.Cause == CauseSetupFailed || c.Cause == CauseMediaFailed || (c.Cause == CauseMeta && code != 0):
			return call.Failed, reason
		case c.Cause == CauseMeta:
			return call.Missed, call.QueueAbandoned
		}
		return call.Missed, reason
	}
	if Answered(c) {
		return call.Answered, reason
	}
	if c.Rec.Direction == call.BusinessInitiated {
		switch {
		case c.User == UserRejected || c.Cause == CauseUserDeclined:
			return call.Declined, call.UserDeclined
		case c.Cause == CauseSetupFailed || c.Cause == CauseMediaFailed || code != 0:
			return call.Failed, reason
		case c.Cause == CauseMeta || c.Cause == CauseRingCeiling:
			// Meta ended it without pickup and without an error: the user
			// did not answer (a FAILED status alone says no more than that).
			return call.Unanswered, call.UserNoAnswer
		}
		return call.Unanswered, reason
	}
	switch c.Cause {
	case CauseSetupFailed, CauseAcceptFailed, CauseMediaFailed:
		return call.Failed, reason
	case CauseMeta:
		if code != 0 {
			return call.Failed, reason
		}
	}
	return call.Missed, reason
}

func reasonOf(cause Cause, code int) call.EndReason {
	switch cause {
	case CauseAgentHangup:
		return call.AgentHangup
	case CauseMeta:
		switch {
		case code == cloudapi.CodeNoMedia || code == cloudapi.CodeClientMediaFailed || code == cloudapi.CodeAcceptedNoMediaSignal:
			return call.MediaTimeout
		case code != 0:
			return call.MetaError
		}
		return call.UserHangup
	case CauseRingTimeout:
		return call.RingTimeout
	case CauseNoAgent:
		return call.NoAgent
	case CauseAgentsDeclined:
		return call.AgentRejected
	case CauseUserDeclined:
		return call.UserDeclined
	case CauseRingCeiling:
		return call.UserNoAnswer
	case CauseMediaTimeout, CauseMediaFailed:
		return call.MediaTimeout
	case CauseAgentLost:
		return call.AgentLost
	case CauseSetupFailed:
		return call.SetupFailed
	case CauseAcceptFailed:
		return call.MetaError
	case CauseDrained:
		return call.Drained
	case CauseOwnerLost:
		return call.OwnerLost
	case CauseStale:
		return call.Stale
	case CauseQueueTimeout:
		return call.QueueTimeout
	case CauseQueueFull:
		return call.QueueFull
	case CauseIVRHangup:
		return call.IVRHangup
	}
	return call.ReasonUnknown
}

// endUse is the permission use a finished call records, if any: a
// business-initiated call picked up counts as connected (when ACCEPTED did
// not count it already); one the user declined or did not answer feeds the
// unanswered streak (the reference counts declines too). A call our side
// failed or cancelled counts for nothing.
func endUse(c Call, o call.Outcome, r call.EndReason) (PermissionUse, bool) {
	if c.Rec.Direction != call.BusinessInitiated {
		return 0, false
	}
	switch {
	case o == call.Answered && !c.OutboundHit:
		return UseOutboundConnected, true
	case o == call.Declined:
		return UseOutboundDeclined, true
	case o == call.Unanswered && r == call.UserNoAnswer:
		return UseOutboundUnanswered, true
	}
	return 0, false
}

// GatewayOnly reports whether a stored record is of a user-initiated call
// callgw answered itself and no agent took (a waiting caller), for calls
// rebuilt from Redis (reaped, or completed by a late terminate).
func GatewayOnly(r call.Record) bool {
	return r.Direction == call.UserInitiated && !r.AnsweredAt.IsZero() && r.Agent == ""
}
