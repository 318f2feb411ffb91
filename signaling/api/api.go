package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/billing"
	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/permissions"
	"github.com/callgw/callgw/phone"
	"github.com/callgw/callgw/signaling"
	"github.com/callgw/callgw/signaling/agents"
	"github.com/callgw/callgw/signaling/cloudapi"
)

// Role is what a caller of the API may do.
type Role string

const (
	RoleAgent      Role = "agent"      // own calls, masked numbers
	RoleSupervisor Role = "supervisor" // everything, masked numbers
	RoleAdmin      Role = "admin"      // everything, full numbers
)

// Calls is what the API needs from call control.
type Calls interface {
	Dial(ctx context.Context, agent, to string) (agents.CallInfo, error)
	PermissionState(ctx context.Context, to string) (permissions.Decision, error)
	RequestPermission(ctx context.Context, to, text string) (permissions.Decision, error)
	Live() []agents.CallInfo
	PermissionOutcomes(ctx context.Context, month string) (map[string]int64, error)
	// AvailableAgents returns the agents available on any instance of the
	// cluster (the hub only knows its own sessions).
	AvailableAgents() map[string]bool
}

// Ledger is what the API needs from billing.
type Ledger interface {
	Usage(ctx context.Context, month string) (*billing.UsageReport, error)
	Calls(ctx context.Context, f billing.CallFilter) ([]billing.Entry, string, error)
}

// Agents is what the API needs from the agent hub (this instance's
// sessions, for the live view).
type Agents interface {
	Sessions(keep func(*agents.Session) bool) []*agents.Session
}

// Config configures the API.
type Config struct {
	APIKeys     []string // "key" (role admin) or "key:role" with role supervisor or admin
	TokenSecret []byte   // verifies agent tokens used as bearer
	Demo        bool
	Sim         bool
	MaskNumbers bool
	Now         func() time.Time
	Location    *time.Location // month boundaries of usage reports (default UTC)
}

// API serves /api/v1.
type API struct {
	cfg    Config
	calls  Calls
	recs   Recordings // recordings.go; nil = not configured
	ledger Ledger
	agents Agents
	log    *slog.Logger
	keys   []apiKey

	buttons  Buttons
	settings Settings
	routing  Routing
	control  CallControl // control.go
}

type apiKey struct {
	key  []byte
	role Role
}

// New builds the API.
func New(cfg Config, calls Calls, ledger Ledger, ag Agents, log *slog.Logger) (*API, error) {
	if calls == nil || ledger == nil || ag == nil {
		return nil, errors.New("api: calls, ledger and agents are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &API{cfg: cfg, calls: calls, ledger: ledger, agents: ag, log: log}
	a.buttons, _ = calls.(Buttons)
	a.settings, _ = calls.(Settings)
	for _, k := range cfg.APIKeys {
		key, role, _ := strings.Cut(k, ":")
		if role == "" {
			role = string(RoleAdmin)
		}
		if Role(role) != RoleSupervisor && Role(role) != RoleAdmin {
			// An API key names no agent: agents authenticate with their token.
			return nil, fmt.Errorf("api: API key role %q must be supervisor or admin (agents use agent tokens)", role)
		}
		a.keys = append(a.keys, apiKey{key: []byte(key), role: Role(role)})
	}
	return a, nil
}

// principal is an authenticated caller.
type principal struct {
	agent string // set for agent tokens
	role  Role
}

func (p principal) fullNumbers() bool { return p.role == RoleAdmin }

// Handler returns the /api/v1 routes.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/config", a.getConfig)
	mux.Handle("GET /api/v1/permissions/{number}", a.auth(RoleAgent, a.getPermission))
	mux.Handle("POST /api/v1/permission-requests", a.auth(RoleAgent, a.postPermissionRequest))
	mux.Handle("POST /api/v1/calls", a.auth(RoleAgent, a.postCall))
	mux.Handle("GET /api/v1/calls", a.auth(RoleAgent, a.getCalls))
	mux.Handle("GET /api/v1/usage", a.auth(RoleSupervisor, a.getUsage))
	mux.Handle("GET /api/v1/live", a.auth(RoleSupervisor, a.getLive))
	// Recordings (recordings.go): the archive audits every access.
	mux.Handle("GET /api/v1/recordings", a.auth(RoleAgent, a.getRecordings))
	mux.Handle("GET /api/v1/recordings/audit", a.auth(RoleAdmin, a.getRecordingAudit))
	mux.Handle("GET /api/v1/calls/{id}/recordings", a.auth(RoleAgent, a.getCallRecordings))
	mux.Handle("GET /api/v1/calls/{id}/recordings/{kind}", a.auth(RoleAgent, a.getCallRecording))
	mux.Handle("GET /api/v1/calls/{id}/transcript", a.auth(RoleAgent, a.getTranscript))
	mux.Handle("POST /api/v1/calls/{id}/recording/stop", a.auth(RoleAgent, a.postRecordingStop))
	mux.Handle("POST /api/v1/call-buttons", a.auth(RoleAgent, a.postCallButton))
	mux.Handle("GET /api/v1/numbers/{id}/settings", a.auth(RoleSupervisor, a.getNumberSettings))
	a.routingRoutes(mux)
	a.controlRoutes(mux) // control.go
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	// ServeMux answers an unclean path ("/api/v1/permissions/.", "//")
	// with an HTML redirect; the API answers JSON: no such endpoint.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p != cleanPath(p) {
			writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// cleanPath is path.Clean keeping a trailing slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, p principal)

func rank(r Role) int {
	switch r {
	case RoleAgent:
		return 1
	case RoleSupervisor:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

func (a *API) auth(min Role, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="callgw"`)
			writeError(w, http.StatusUnauthorized, "unauthenticated", "send Authorization: Bearer <API key or agent token>")
			return
		}
		p, ok := a.principal(tok)
		if !ok {
			writeError(w, http.StatusUnauthorized, "unauthenticated", "unknown API key or bad/expired token")
			return
		}
		if rank(p.role) < rank(min) {
			writeError(w, http.StatusForbidden, "forbidden", "your role may not do this")
			return
		}
		h(w, r, p)
	})
}

// bearer reads "Bearer <credential>"; the scheme is case-insensitive
// (RFC 9110 §11.1) and may be followed by several spaces.
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func (a *API) principal(tok string) (principal, bool) {
	for _, k := range a.keys {
		if subtle.ConstantTimeCompare(k.key, []byte(tok)) == 1 {
			return principal{role: k.role}, true
		}
	}
	if len(a.cfg.TokenSecret) > 0 && strings.Count(tok, ".") == 2 {
		c, err := agents.VerifyToken(a.cfg.TokenSecret, tok, a.cfg.Now())
		if err == nil {
			return principal{agent: c.Subject, role: Role(c.Role)}, true
		}
	}
	return principal{}, false
}

func (a *API) getConfig(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"demo": a.cfg.Demo, "sim": a.cfg.Sim, "mask_numbers": a.cfg.MaskNumbers, "protocol": agents.Version})
}

func (a *API) getPermission(w http.ResponseWriter, r *http.Request, _ principal) {
	number := r.PathValue("number")
	if !validUser(number) {
		writeError(w, http.StatusBadRequest, agents.CodeInvalidNumber, msgInvalidUser)
		return
	}
	d, err := a.calls.PermissionState(r.Context(), number)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

type toBody struct {
	To    string `json:"to"`
	From  string `json:"from,omitempty"` // POST /calls: the business number (phone_number_id) to call from
	Agent string `json:"agent,omitempty"`
	Text  string `json:"text,omitempty"`
}

// Limits of request fields.
const (
	maxBody      = 16 << 10
	maxTextRunes = 1024 // WhatsApp's limit on an interactive message body
	maxAgentLen  = 128
)

const msgInvalidUser = "\"to\" must be a phone number in E.164 (with or without +) or a WhatsApp user id (BSUID)"

// validUser reports whether s is a phone number or a BSUID
// (internal/phone.ParseUser), judged before any resource is used.
func validUser(s string) bool {
	if len(s) > 64 {
		return false
	}
	_, err := phone.ParseUser(s)
	return err == nil
}

// validAgent reports whether s can be an agent id (a token subject):
// printable, no spaces, at most 128 bytes.
func validAgent(s string) bool {
	if s == "" || len(s) > maxAgentLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// decode reads one JSON object of at most 16 KiB; the messages are fixed
// texts (the decoder's wording stays out of answers).
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data")
	}
	if err != nil {
		var mbe *http.MaxBytesError
		msg := "body must be one JSON object"
		switch {
		case errors.As(err, &mbe):
			msg = "body over 16 KiB"
		case errors.Is(err, io.EOF):
			msg = "body is empty: send a JSON object"
		}
		writeError(w, http.StatusBadRequest, "bad_request", msg)
		return false
	}
	return true
}

func (a *API) postPermissionRequest(w http.ResponseWriter, r *http.Request, _ principal) {
	var b toBody
	if !decode(w, r, &b) {
		return
	}
	if !validUser(b.To) {
		writeError(w, http.StatusBadRequest, agents.CodeInvalidNumber, msgInvalidUser)
		return
	}
	if !utf8.ValidString(b.Text) || utf8.RuneCountInString(b.Text) > maxTextRunes {
		writeError(w, http.StatusBadRequest, "bad_request", "\"text\" must be UTF-8 of at most 1024 characters")
		return
	}
	d, err := a.calls.RequestPermission(r.Context(), b.To, b.Text)
	if err != nil {
		a.failWith(w, r, err, d)
		return
	}
	writeJSON(w, http.StatusAccepted, d)
}

func (a *API) postCall(w http.ResponseWriter, r *http.Request, p principal) {
	var b toBody
	if !decode(w, r, &b) {
		return
	}
	if !validUser(b.To) {
		writeError(w, http.StatusBadRequest, agents.CodeInvalidNumber, msgInvalidUser)
		return
	}
	if b.Agent != "" && !validAgent(b.Agent) {
		writeError(w, http.StatusBadRequest, "bad_request", "\"agent\" must be an agent id (printable, no spaces, at most 128 bytes)")
		return
	}
	agent := b.Agent
	if p.role == RoleAgent {
		if agent != "" && agent != p.agent {
			writeError(w, http.StatusForbidden, "forbidden", "agents place calls for themselves")
			return
		}
		agent = p.agent
	}
	if agent == "" {
		// Any agent available on any instance: call control routes the
		// agent leg to the instance holding the agent's socket.
		for ag := range a.calls.AvailableAgents() {
			agent = ag
			break
		}
		if agent == "" {
			writeError(w, http.StatusConflict, "no_agent", "no agent is available to take the call: name one in \"agent\"")
			return
		}
	}
	ci, err := a.dial(r, agent, b)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, ci)
}

// badParam answers 400 for a query parameter.
func badParam(w http.ResponseWriter, msg string) {
	writeError(w, http.StatusBadRequest, "bad_request", msg)
}

// format reads ?format= (csv, json or absent); ok is false after a 400.
func format(w http.ResponseWriter, r *http.Request) (csv, ok bool) {
	switch r.URL.Query().Get("format") {
	case "":
		return strings.Contains(r.Header.Get("Accept"), "text/csv"), true
	case "csv":
		return true, true
	case "json":
		return false, true
	}
	badParam(w, "format must be csv or json")
	return false, false
}

// cursorRe: a ledger sequence, positive, at most 18 digits (fits int64).
var cursorRe = regexp.MustCompile(`^[1-9][0-9]{0,17}$`)

func (a *API) getCalls(w http.ResponseWriter, r *http.Request, p principal) {
	q := r.URL.Query()
	f := billing.CallFilter{Agent: q.Get("agent"), Number: q.Get("number"), Business: q.Get("phone_number_id"), Cursor: q.Get("cursor")}
	if f.Business != "" && !pnidRe.MatchString(f.Business) {
		badParam(w, "phone_number_id must be a business number's id (digits)")
		return
	}
	if f.Cursor != "" && !cursorRe.MatchString(f.Cursor) {
		badParam(w, "cursor must be a next_cursor this API returned")
		return
	}
	if f.Number != "" {
		if _, err := phone.Parse(f.Number); err != nil || len(f.Number) > 64 {
			badParam(w, "number must be a phone number in E.164 (with or without +)")
			return
		}
	}
	if f.Agent != "" && !validAgent(f.Agent) {
		badParam(w, "agent must be an agent id (printable, no spaces, at most 128 bytes)")
		return
	}
	if p.role == RoleAgent {
		f.Agent = p.agent
	}
	if v := q.Get("direction"); v != "" {
		if f.Direction = call.ParseDirection(v); f.Direction == call.DirectionUnknown {
			badParam(w, "direction must be user_initiated or business_initiated")
			return
		}
	}
	if v := q.Get("outcome"); v != "" {
		if f.Outcome = call.ParseOutcome(v); f.Outcome == call.OutcomeUnknown {
			badParam(w, "outcome must be answered, missed, declined, unanswered or failed")
			return
		}
	}
	for _, tv := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(tv.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				badParam(w, tv.name+" must be RFC 3339 (e.g. 2026-11-01T00:00:00Z)")
				return
			}
			*tv.dst = t
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		badParam(w, "from must be before to")
		return
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			badParam(w, "limit must be 1..1000")
			return
		}
		f.Limit = n
	}
	asCSV, ok := format(w, r)
	if !ok {
		return
	}
	es, next, err := a.ledger.Calls(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	// Admins always see full numbers; others only when the operator turned
	// masking off (CALLGW_MASK_NUMBERS=false), as agents' ringing calls do.
	mask := !p.fullNumbers() && a.cfg.MaskNumbers
	if asCSV {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="calls.csv"`)
		if next != "" {
			w.Header().Set("X-Next-Cursor", next)
		}
		if err := billing.WriteCallsCSV(w, es, mask); err != nil {
			a.log.Warn("api: calls CSV not fully written", "err", err)
		}
		return
	}
	if mask {
		for i := range es {
			es[i].UserName = ""
			es[i].UserPhone = phone.Mask(es[i].UserPhone)
			if es[i].UserID != "" {
				es[i].UserID = phone.Mask(es[i].UserID)
			}
		}
	}
	if es == nil {
		es = []billing.Entry{}
	}
	body := map[string]any{"calls": es, "next_cursor": next}
	ids := make([]string, len(es))
	for i := range es {
		ids[i] = string(es[i].ID)
	}
	if rs := a.recordingStatuses(r.Context(), ids); rs != nil {
		body["recordings"] = rs // recordings.go: status of each call's recordings
	}
	writeJSON(w, http.StatusOK, body)
}

func (a *API) getUsage(w http.ResponseWriter, r *http.Request, _ principal) {
	month := r.URL.Query().Get("month")
	if month == "" {
		month = a.cfg.Now().In(a.cfg.Location).Format("2006-01")
	}
	if _, err := billing.ParseMonth(month); err != nil {
		badParam(w, "month must be YYYY-MM")
		return
	}
	asCSV, ok := format(w, r)
	if !ok {
		return
	}
	rep, err := a.ledger.Usage(r.Context(), month)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if asCSV {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="usage-%s.csv"`, month))
		if err := billing.WriteUsageCSV(w, rep); err != nil {
			a.log.Warn("api: usage CSV not fully written", "err", err)
		}
		return
	}
	outcomes, err := a.calls.PermissionOutcomes(r.Context(), month)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, usageWithPermissions{UsageReport: rep, PermissionRequests: outcomes})
}

// AgentPresence is one agent in the live view.
type AgentPresence struct {
	Agent    string `json:"agent"`
	Presence string `json:"presence"`
	Sessions int    `json:"sessions"`
	CallID   string `json:"call_id,omitempty"`
}

func (a *API) getLive(w http.ResponseWriter, _ *http.Request, p principal) {
	calls := a.calls.Live()
	byAgent := map[string]*AgentPresence{}
	for _, s := range a.agents.Sessions(nil) {
		ap := byAgent[s.Agent]
		if ap == nil {
			ap = &AgentPresence{Agent: s.Agent, Presence: string(agents.Away)}
			byAgent[s.Agent] = ap
		}
		ap.Sessions++
		if s.Presence() == agents.Available {
			ap.Presence = string(agents.Available)
		}
	}
	for i := range calls {
		if ap := byAgent[calls[i].Agent]; ap != nil && calls[i].State != "ended" {
			ap.CallID = calls[i].ID
		}
	}
	list := make([]AgentPresence, 0, len(byAgent))
	for _, ap := range byAgent {
		list = append(list, *ap)
	}
	if calls == nil {
		calls = []agents.CallInfo{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"calls": calls, "agents": list})
}

// fail maps an error to a status and JSON body.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) { a.failWith(w, r, err, nil) }

var statusForCode = map[string]int{
	agents.CodeInvalidNumber: http.StatusBadRequest,
	agents.CodeBadMessage:    http.StatusBadRequest,
	agents.CodeUnavailable:   http.StatusServiceUnavailable,
	agents.CodeMetaError:     http.StatusBadGateway,
	agents.CodeUnknownCall:   http.StatusNotFound,
	agents.CodeInternal:      http.StatusInternalServerError,
}

// failWith maps call control's errors to HTTP, here at the REST edge; the
// body is {"error":{code,message,meta_code?}} plus the permission state
// when one is given. Messages are fixed texts: the error's own text (which
// may name addresses, keys or timeouts) goes to the log only.
func (a *API) failWith(w http.ResponseWriter, r *http.Request, err error, decision any) {
	st, code, msg, metaCode := problem(err)
	switch {
	case st >= 500 && st != http.StatusBadGateway && st != http.StatusServiceUnavailable:
		a.log.Error("api: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	case st >= 500:
		a.log.Warn("api: dependency failed", "method", r.Method, "path", r.URL.Path, "status", st, "code", code, "err", err)
	}
	e := map[string]any{"code": code, "message": msg}
	if metaCode != 0 {
		e["meta_code"] = metaCode
	}
	body := map[string]any{"error": e}
	if decision != nil && !reflect.ValueOf(decision).IsZero() {
		body["permission"] = decision
	}
	writeJSON(w, st, body)
}

const msgUnavailable = "state store unavailable, try again"

// problem is the status, code and message of an error of call control, the
// ledger or the permission store. Client mistakes are 4xx, dependency
// outages 502/503; 500 is left for bugs.
func problem(err error) (status int, code, msg string, metaCode int) {
	var (
		ce *agents.CodedError
		pe *signaling.PermissionError
		me *signaling.MetaError
	)
	switch {
	case errors.As(err, &pe):
		return http.StatusConflict, string(pe.Reason), pe.Text(), 0
	case errors.As(err, &me):
		st := http.StatusBadGateway
		switch me.Code {
		case cloudapi.CodeNoPermission, cloudapi.CodeRequestLimit, cloudapi.CodeConnectedCallLimit, cloudapi.CodePermanentExists:
			st = http.StatusConflict
		}
		return st, agents.CodeMetaError, me.Reason(), me.Code
	case errors.As(err, &ce):
		st, ok := statusForCode[ce.Code]
		if !ok {
			st = http.StatusConflict
		}
		return st, ce.Code, ce.Message, ce.MetaCode
	}
	for _, m := range []struct {
		err        error
		status     int
		code, text string
	}{
		{signaling.ErrInvalidNumber, http.StatusBadRequest, agents.CodeInvalidNumber, "not a valid phone number or WhatsApp user id"},
		{permissions.ErrInvalidPair, http.StatusBadRequest, agents.CodeInvalidNumber, "not a valid phone number or WhatsApp user id"},
		{billing.ErrInvalidCursor, http.StatusBadRequest, "bad_request", "cursor must be a next_cursor this API returned"},
		{billing.ErrInvalidMonth, http.StatusBadRequest, "bad_request", "month must be YYYY-MM"},
		{signaling.ErrTemplateRequired, http.StatusConflict, "template_required", "outside the user's 24 h customer service window a permission request must be a template: configure CALLGW_PERMISSION_TEMPLATE"},
		{signaling.ErrOutsideWindow, http.StatusConflict, "outside_window", "only possible inside the user's 24 h customer service window (the user must have written or called in the last 24 h)"},
		{signaling.ErrUnknownNumber, http.StatusNotFound, "unknown_number", "not a number this deployment serves"},
		{signaling.ErrUnknownBusinessNumber, http.StatusBadRequest, signaling.CodeUnknownNumber, "\"from\" is not a business number this deployment serves"},
		{signaling.ErrNotYourNumber, http.StatusForbidden, signaling.CodeNotYourNumber, "agents call from the numbers of their teams only"},
		{signaling.ErrBadCommand, http.StatusBadRequest, "bad_request", "the request is not valid"},
		{signaling.ErrNoCallback, http.StatusBadRequest, agents.CodeInvalidNumber, "that caller has no phone number to call back"},
		{signaling.ErrUnknownCall, http.StatusNotFound, agents.CodeUnknownCall, "no such call"},
		{signaling.ErrCallEnded, http.StatusNotFound, agents.CodeUnknownCall, "the call has ended"},
		{signaling.ErrCallTaken, http.StatusConflict, agents.CodeCallTaken, "another agent took the call"},
		{signaling.ErrNotYourCall, http.StatusForbidden, agents.CodeNotYourCall, "the call belongs to another agent"},
		{signaling.ErrOutOfTurn, http.StatusConflict, agents.CodeOutOfTurn, "not possible in the call's current state"},
		{signaling.ErrNotAvailable, http.StatusConflict, agents.CodeNotAvailable, "the agent is not available"},
		{signaling.ErrDraining, http.StatusServiceUnavailable, agents.CodeUnavailable, "this instance is shutting down"},
		{signaling.ErrStore, http.StatusServiceUnavailable, agents.CodeUnavailable, msgUnavailable},
		{billing.ErrLedger, http.StatusServiceUnavailable, agents.CodeUnavailable, "call log unavailable, try again"},
		{permissions.ErrUnavailable, http.StatusServiceUnavailable, agents.CodeUnavailable, msgUnavailable},
		{permissions.ErrMetaFallback, http.StatusServiceUnavailable, agents.CodeUnavailable, "permission state unavailable (state store and WhatsApp), try again"},
		{signaling.ErrNotConfigured, http.StatusServiceUnavailable, agents.CodeUnavailable, "outbound calling is not configured"},
		{signaling.ErrMediaSetup, http.StatusServiceUnavailable, agents.CodeUnavailable, "media could not be set up, try again"},
	} {
		if errors.Is(err, m.err) {
			return m.status, m.code, m.text, 0
		}
	}
	if isOutage(err) {
		return http.StatusServiceUnavailable, agents.CodeUnavailable, msgUnavailable, 0
	}
	return http.StatusInternalServerError, agents.CodeInternal, "internal error", 0
}

// isOutage reports whether err is a dependency failing (Redis or the
// network), not a bug: a Redis error reply, a network error, a closed
// client, a timeout.
func isOutage(err error) bool {
	var (
		re redis.Error
		ne net.Error
	)
	return errors.As(err, &re) || errors.As(err, &ne) || errors.Is(err, redis.ErrClosed) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// usageWithPermissions is the usage report plus the month's
// permission-request outcomes (sent, accepted, rejected).
type usageWithPermissions struct {
	*billing.UsageReport
	PermissionRequests map[string]int64 `json:"permission_requests"`
}
