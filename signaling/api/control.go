package api

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/callgw/callgw/signaling/agents"
)

// CallControl is what the API needs for hold and transfer (optional:
// found on the Calls given to New). Command runs an agent protocol command
// (hold, unhold, transfer, transfer_complete, transfer_cancel) as agent; an
// empty agent acts as the agent who owns the call (supervisors, admins).
type CallControl interface {
	Command(ctx context.Context, agent string, m *agents.ClientMessage) error
}

type transferBody struct {
	Agent string `json:"agent,omitempty"`
	Team  string `json:"team,omitempty"`
	Mode  string `json:"mode"`
}

// controlRoutes registers hold and transfer (issue 14). Monitoring needs
// trickled ICE both ways: it is on the websocket only (monitor messages).
func (a *API) controlRoutes(mux *http.ServeMux) {
	a.control, _ = a.calls.(CallControl)
	mux.Handle("POST /api/v1/calls/{id}/hold", a.auth(RoleAgent, a.postControl(agents.TypeHold)))
	mux.Handle("POST /api/v1/calls/{id}/resume", a.auth(RoleAgent, a.postControl(agents.TypeUnhold)))
	mux.Handle("POST /api/v1/calls/{id}/transfer", a.auth(RoleAgent, a.postControl(agents.TypeTransfer)))
	mux.Handle("POST /api/v1/calls/{id}/transfer/complete", a.auth(RoleAgent, a.postControl(agents.TypeTransferComplete)))
	mux.Handle("POST /api/v1/calls/{id}/transfer/cancel", a.auth(RoleAgent, a.postControl(agents.TypeTransferCancel)))
}

func (a *API) postControl(typ string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p principal) {
		m := &agents.ClientMessage{Type: typ, CallID: r.PathValue("id")}
		if typ == agents.TypeTransfer {
			var b transferBody
			if !decode(w, r, &b) {
				return
			}
			m.Agent, m.Team, m.Mode = b.Agent, b.Team, b.Mode
		}
		// The websocket's validation, so both edges accept the same.
		raw, _ := json.Marshal(m)
		if _, err := agents.ParseClientMessage(raw); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		if a.control == nil {
			writeError(w, http.StatusServiceUnavailable, "unavailable", "call control is not available")
			return
		}
		agent := ""
		if p.role == RoleAgent {
			agent = p.agent
		}
		if err := a.control.Command(r.Context(), agent, m); err != nil {
			a.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func init() {
	statusForCode[agents.CodeForbidden] = http.StatusForbidden
	statusForCode[agents.CodeNoTarget] = http.StatusConflict
}
