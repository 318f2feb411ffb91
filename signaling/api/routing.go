package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/callgw/callgw/config"
	"github.com/callgw/callgw/signaling"
	"github.com/callgw/callgw/signaling/agents"
	"github.com/callgw/callgw/signaling/cloudapi"
	"github.com/callgw/callgw/signaling/routing"
)

// Routing is what the API needs for numbers, teams, queues and callback
// tasks (signaling.Controller with a Router).
type Routing interface {
	RoutingView(agent string) signaling.RoutingView
	Queues(ctx context.Context) ([]signaling.QueueEntry, error)
	Callbacks(ctx context.Context, f signaling.TaskFilter) ([]signaling.CallbackTask, error)
	ClaimCallback(ctx context.Context, id, agent string, anyTeam bool) (signaling.CallbackTask, error)
	UnclaimCallback(ctx context.Context, id, agent string, anyTeam bool) (signaling.CallbackTask, error)
	UpdateNumberSettings(ctx context.Context, pnid string, s cloudapi.Settings) (json.RawMessage, error)
}

// putNumberSettings changes a number's calling settings at Meta (admin):
// the body is the settings object ({"calling": {...}}); call_hours, when
// given, replace Meta's whole (omitting holiday_schedule deletes it).
func (a *API) putNumberSettings(w http.ResponseWriter, r *http.Request, _ principal) {
	if !pnidRe.MatchString(r.PathValue("id")) {
		writeError(w, http.StatusBadRequest, "bad_request", "the number id must be a phone number id (digits)")
		return
	}
	var s cloudapi.Settings
	if !decode(w, r, &s) {
		return
	}
	s.Calling.Restrictions, s.Calling.Raw = nil, nil
	raw, err := a.routing.UpdateNumberSettings(r.Context(), r.PathValue("id"), s)
	if err != nil {
		if errors.Is(err, signaling.ErrBadSettings) {
			writeError(w, http.StatusBadRequest, "bad_settings", "the settings are not valid: "+settingsProblem(err))
			return
		}
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(raw)
}

// settingsProblem is the validation message (cloudapi's, which names the
// field and never echoes secrets).
func settingsProblem(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "bad input: "); i >= 0 {
		return msg[i+len("bad input: "):]
	}
	return "see the field rules in docs/openapi.yaml"
}

// DialerFrom places calls from a chosen business number.
type DialerFrom interface {
	DialFrom(ctx context.Context, agent, to, from string) (agents.CallInfo, error)
}

var numberIDRe = regexp.MustCompile(`^[0-9]{1,32}$`)

// dial places POST /calls: from the number in "from" when given.
func (a *API) dial(r *http.Request, agent string, b toBody) (agents.CallInfo, error) {
	if b.From == "" {
		return a.calls.Dial(r.Context(), agent, b.To)
	}
	df, ok := a.calls.(DialerFrom)
	if !ok || !numberIDRe.MatchString(b.From) {
		return agents.CallInfo{}, signaling.ErrUnknownBusinessNumber
	}
	return df.DialFrom(r.Context(), agent, b.To, b.From)
}

// routingRoutes adds the routing endpoints (when call control has them).
func (a *API) routingRoutes(mux *http.ServeMux) {
	rt, ok := a.calls.(Routing)
	if !ok {
		return
	}
	a.routing = rt
	mux.Handle("GET /api/v1/routing", a.auth(RoleAgent, a.getRouting))
	mux.Handle("PUT /api/v1/numbers/{id}/settings", a.auth(RoleAdmin, a.putNumberSettings))
	mux.Handle("GET /api/v1/queues", a.auth(RoleSupervisor, a.getQueues))
	mux.Handle("GET /api/v1/callbacks", a.auth(RoleAgent, a.getCallbacks))
	mux.Handle("POST /api/v1/callbacks/{id}/claim", a.auth(RoleAgent, a.claimCallback))
	mux.Handle("POST /api/v1/callbacks/{id}/unclaim", a.auth(RoleAgent, a.unclaimCallback))
}

// getRouting lists the numbers (brands) and teams: an agent sees theirs,
// supervisors everything.
func (a *API) getRouting(w http.ResponseWriter, _ *http.Request, p principal) {
	agent := ""
	if p.role == RoleAgent {
		agent = p.agent
	}
	writeJSON(w, http.StatusOK, a.routing.RoutingView(agent))
}

func (a *API) getQueues(w http.ResponseWriter, r *http.Request, _ principal) {
	q, err := a.routing.Queues(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"queues": q})
}

var (
	teamRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	taskRe = regexp.MustCompile(`^cb-[^\s{}/]{1,256}$`)
)

func (a *API) getCallbacks(w http.ResponseWriter, r *http.Request, p principal) {
	q := r.URL.Query()
	f := signaling.TaskFilter{State: q.Get("state"), Full: p.fullNumbers()}
	switch f.State {
	case "", "open", "claimed", "closed":
	default:
		badParam(w, "state must be open, claimed or closed")
		return
	}
	if t := q.Get("team"); t != "" {
		if !teamRe.MatchString(t) {
			badParam(w, "team must be a team id")
			return
		}
		f.Teams = []config.TeamID{config.TeamID(t)}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			badParam(w, "limit must be 1..500")
			return
		}
		f.Limit = n
	}
	if p.role == RoleAgent {
		f.Agent = p.agent
	}
	ts, err := a.routing.Callbacks(r.Context(), f)
	if err != nil {
		a.failRouting(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"callbacks": ts})
}

type claimBody struct {
	Agent string `json:"agent,omitempty"`
}

func (a *API) claimCallback(w http.ResponseWriter, r *http.Request, p principal) {
	a.moveCallback(w, r, p, a.routing.ClaimCallback)
}

func (a *API) unclaimCallback(w http.ResponseWriter, r *http.Request, p principal) {
	a.moveCallback(w, r, p, a.routing.UnclaimCallback)
}

func (a *API) moveCallback(w http.ResponseWriter, r *http.Request, p principal,
	op func(ctx context.Context, id, agent string, anyTeam bool) (signaling.CallbackTask, error)) {
	id := r.PathValue("id")
	if !taskRe.MatchString(id) {
		writeError(w, http.StatusNotFound, "unknown_task", "no such callback task")
		return
	}
	agent, anyTeam := p.agent, p.role != RoleAgent
	if r.ContentLength != 0 {
		var b claimBody
		if !decode(w, r, &b) {
			return
		}
		if b.Agent != "" {
			if !validAgent(b.Agent) {
				badParam(w, "\"agent\" must be an agent id")
				return
			}
			if p.role == RoleAgent && b.Agent != p.agent {
				writeError(w, http.StatusForbidden, "forbidden", "agents claim tasks for themselves")
				return
			}
			agent = b.Agent
		}
	}
	if agent == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "name the agent in \"agent\"")
		return
	}
	t, err := op(r.Context(), id, agent, anyTeam)
	if err != nil {
		a.failRouting(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// failRouting maps routing's errors, then the common ones.
func (a *API) failRouting(w http.ResponseWriter, r *http.Request, err error) {
	for _, m := range []struct {
		err        error
		status     int
		code, text string
	}{
		{routing.ErrNoTask, http.StatusNotFound, "unknown_task", "no such callback task"},
		{routing.ErrTaskClaimed, http.StatusConflict, "task_claimed", "another agent claimed the task"},
		{routing.ErrTaskClosed, http.StatusConflict, "task_closed", "the task is closed: the user was reached"},
		{routing.ErrUnknownTeam, http.StatusBadRequest, "unknown_team", "no such team"},
		{signaling.ErrNotInTeam, http.StatusForbidden, "forbidden", "the task belongs to a team you are not in"},
		{signaling.ErrNoRouting, http.StatusNotFound, "not_found", "this deployment has no teams"},
		{routing.ErrInvalidArgument, http.StatusBadRequest, "bad_request", "the request is not valid"},
	} {
		if errors.Is(err, m.err) {
			writeError(w, m.status, m.code, m.text)
			return
		}
	}
	if errors.Is(err, routing.ErrUnavailable) {
		writeError(w, http.StatusServiceUnavailable, "unavailable", msgUnavailable)
		return
	}
	a.fail(w, r, err)
}
