package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/recording"
	"github.com/callgw/callgw/signaling"
)

// Recordings is the recording archive behind the API (internal/app adapts
// package recording). Every method taking a who is audited by the archive
// before anything leaves.
type Recordings interface {
	// Numbers lists the business numbers whose recordings may be listed.
	Numbers() []string
	List(ctx context.Context, who, number string, from, to time.Time, limit int) ([]recording.Call, error)
	Entries(ctx context.Context, who, callID string) ([]recording.Entry, error)
	Open(ctx context.Context, who, callID string, kind recording.Kind, action recording.Action) (io.ReadCloser, recording.Entry, error)
	Link(ctx context.Context, who, callID string, kind recording.Kind, ttl time.Duration) (string, error)
	Transcript(ctx context.Context, who, callID string) (recording.Transcript, []recording.Turn, error)
	Audit(ctx context.Context, q recording.AuditQuery) ([]recording.Access, error)
	// Statuses are the entries of calls for the call log (no content: not audited).
	Statuses(ctx context.Context, callIDs []string) (map[string][]recording.Entry, error)
	// CallAccess says who took a call and whether that number's policy
	// lets agents reach their own calls' recordings; found is false for a
	// call callgw has no metadata of.
	CallAccess(ctx context.Context, callID string) (agent string, agentsMay, found bool, err error)
}

// RecordingStopper stops a call's local recording (call control).
type RecordingStopper interface {
	StopRecording(ctx context.Context, id call.ID, agent string) error
}

// SetRecordings connects the recording archive (before Handler is served).
func (a *API) SetRecordings(r Recordings) { a.recs = r }

// LinkTTL is the life of the signed links the API hands out.
const LinkTTL = 5 * time.Minute

// callIDPathRe: Meta's call ids ("wacid.…", base64 with / + = or - _), as
// decoded from a path segment (a "/" in an id is sent as %2F).
var callIDPathRe = regexp.MustCompile(`^[A-Za-z0-9._:=+/\-]{1,256}$`)

// who names the caller in the audit log: the agent's role and id, or the
// API key's role and a fingerprint of the key (never the key).
func who(r *http.Request, p principal) string {
	if p.agent != "" {
		return string(p.role) + ":" + p.agent
	}
	tok, _ := bearer(r.Header.Get("Authorization"))
	sum := sha256.Sum256([]byte(tok))
	return "api-key:" + string(p.role) + ":" + hex.EncodeToString(sum[:4])
}

func (a *API) recordingsOff(w http.ResponseWriter) bool {
	if a.recs == nil {
		writeError(w, http.StatusNotFound, "not_found", "recording is not configured")
		return true
	}
	return false
}

// recordingProblem answers the archive's errors; false when err is not one of them.
func (a *API) recordingProblem(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, recording.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no such recording")
	case errors.Is(err, recording.ErrBadNotice):
		writeError(w, http.StatusBadRequest, "bad_request", "not a valid number or call id")
	case errors.Is(err, recording.ErrBadTranscript):
		writeError(w, http.StatusBadGateway, "bad_transcript", "the stored transcript does not parse")
	default:
		a.fail(w, r, err)
	}
}

// mayAccessCall: supervisors and admins always; an agent only for their own
// calls on a number whose policy lets agents reach recordings.
func (a *API) mayAccessCall(ctx context.Context, p principal, callID string) (bool, error) {
	if rank(p.role) >= rank(RoleSupervisor) {
		return true, nil
	}
	agent, may, found, err := a.recs.CallAccess(ctx, callID)
	if err != nil {
		return false, err
	}
	return found && may && agent == p.agent, nil
}

func timeParam(w http.ResponseWriter, r *http.Request, name string) (time.Time, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, true
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		badParam(w, name+" must be RFC 3339 (e.g. 2026-11-01T00:00:00Z)")
		return time.Time{}, false
	}
	return t, true
}

func limitParam(w http.ResponseWriter, r *http.Request, max int) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 0, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		badParam(w, "limit must be 1.."+strconv.Itoa(max))
		return 0, false
	}
	return n, true
}

// getRecordings lists calls with recordings, newest first.
func (a *API) getRecordings(w http.ResponseWriter, r *http.Request, p principal) {
	if a.recordingsOff(w) {
		return
	}
	number := r.URL.Query().Get("number")
	if number != "" && !pnidRe.MatchString(number) {
		badParam(w, "number must be a business phone number id (digits)")
		return
	}
	from, ok := timeParam(w, r, "from")
	if !ok {
		return
	}
	to, ok := timeParam(w, r, "to")
	if !ok {
		return
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		badParam(w, "from must be before to")
		return
	}
	limit, ok := limitParam(w, r, 1000)
	if !ok {
		return
	}
	if limit == 0 {
		limit = 50
	}
	numbers := a.recs.Numbers()
	if number != "" {
		numbers = []string{number}
	}
	out := []recording.Call{}
	for _, n := range numbers {
		cs, err := a.recs.List(r.Context(), who(r, p), n, from, to, limit)
		if err != nil {
			a.recordingProblem(w, r, err)
			return
		}
		for _, c := range cs {
			if ok, err := a.mayAccessCall(r.Context(), p, c.CallID); err != nil {
				a.fail(w, r, err)
				return
			} else if ok {
				out = append(out, c)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.After(out[j].At) })
	if len(out) > limit {
		out = out[:limit]
	}
	writeJSON(w, http.StatusOK, map[string]any{"calls": out})
}

// RecordingEntry is one object of a call in the API: its index entry and,
// once stored, a short-lived link to it.
type RecordingEntry struct {
	recording.Entry
	URL          string    `json:"url,omitempty"`            // signed link (LinkTTL) to the bytes
	URLExpiresAt time.Time `json:"url_expires_at,omitzero"`  // when URL stops working
	StreamURL    string    `json:"stream_url,omitempty"`     // the same bytes through the API (bearer)
	Transcript   string    `json:"transcript_url,omitempty"` // transcripts: the parsed turns through the API
}

// callForAccess validates the {id} of a recordings request and checks that
// p may reach that call's recordings; false when it has answered already.
func (a *API) callForAccess(w http.ResponseWriter, r *http.Request, p principal, forbidden string) (string, bool) {
	if a.recordingsOff(w) {
		return "", false
	}
	id := r.PathValue("id")
	if !callIDPathRe.MatchString(id) {
		badParam(w, "id must be a call id")
		return "", false
	}
	if ok, err := a.mayAccessCall(r.Context(), p, id); err != nil {
		a.fail(w, r, err)
		return "", false
	} else if !ok {
		writeError(w, http.StatusForbidden, "forbidden", forbidden)
		return "", false
	}
	return id, true
}

// getCallRecordings lists a call's recordings and transcripts, each stored
// one with a signed link (handing out a link is audited as a download).
func (a *API) getCallRecordings(w http.ResponseWriter, r *http.Request, p principal) {
	id, ok := a.callForAccess(w, r, p, "not one of your calls, or agents may not hear this number's recordings")
	if !ok {
		return
	}
	es, err := a.recs.Entries(r.Context(), who(r, p), id)
	if err != nil {
		a.recordingProblem(w, r, err)
		return
	}
	out := make([]RecordingEntry, 0, len(es))
	for _, e := range es {
		re := RecordingEntry{Entry: e}
		if e.Status == recording.StatusStored {
			re.StreamURL = "/api/v1/calls/" + url.PathEscape(id) + "/recordings/" + e.Kind.String()
			if e.Kind == recording.KindTranscript {
				re.Transcript = "/api/v1/calls/" + url.PathEscape(id) + "/transcript"
			}
			u, err := a.recs.Link(r.Context(), who(r, p), id, e.Kind, LinkTTL)
			switch {
			case err == nil:
				re.URL, re.URLExpiresAt = u, a.cfg.Now().Add(LinkTTL).UTC()
			case errors.Is(err, recording.ErrBadConfig):
				// the store signs no links: the stream URL serves the bytes
			default:
				a.recordingProblem(w, r, err)
				return
			}
		}
		out = append(out, re)
	}
	writeJSON(w, http.StatusOK, map[string]any{"call_id": id, "entries": out})
}

// getCallRecording streams one object (audited as play, or download with
// ?download=1).
func (a *API) getCallRecording(w http.ResponseWriter, r *http.Request, p principal) {
	if a.recordingsOff(w) {
		return
	}
	id := r.PathValue("id")
	kind, err := recording.ParseKind(r.PathValue("kind"))
	if !callIDPathRe.MatchString(id) || err != nil {
		badParam(w, "id must be a call id and kind one of recording, transcript, user_audio, business_audio")
		return
	}
	if ok, err := a.mayAccessCall(r.Context(), p, id); err != nil {
		a.fail(w, r, err)
		return
	} else if !ok {
		writeError(w, http.StatusForbidden, "forbidden", "not one of your calls, or agents may not hear this number's recordings")
		return
	}
	action := recording.ActionPlay
	if r.URL.Query().Get("download") == "1" {
		action = recording.ActionDownload
	}
	rc, e, err := a.recs.Open(r.Context(), who(r, p), id, kind, action)
	if err != nil {
		a.recordingProblem(w, r, err)
		return
	}
	defer rc.Close()
	ct := e.MimeType
	if ct == "" {
		ct = kind.ContentType()
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-store")
	if e.Size > 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(e.Size, 10))
	}
	if action == recording.ActionDownload {
		w.Header().Set("Content-Disposition", `attachment; filename="`+kind.String()+"."+kind.Ext()+`"`)
	}
	if _, err := io.Copy(w, rc); err != nil {
		a.log.Warn("api: recording not fully sent", "call", id, "kind", kind, "err", err)
	}
}

// getTranscript answers a call's transcript as speaker turns.
func (a *API) getTranscript(w http.ResponseWriter, r *http.Request, p principal) {
	id, ok := a.callForAccess(w, r, p, "not one of your calls, or agents may not read this number's transcripts")
	if !ok {
		return
	}
	t, turns, err := a.recs.Transcript(r.Context(), who(r, p), id)
	if err != nil {
		a.recordingProblem(w, r, err)
		return
	}
	if turns == nil {
		turns = []recording.Turn{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"call_id": id, "language": t.Transcript.Language,
		"duration": t.Transcript.Duration, "text": t.Transcript.Text, "turns": turns})
}

// getRecordingAudit reads the access log (admins).
func (a *API) getRecordingAudit(w http.ResponseWriter, r *http.Request, _ principal) {
	if a.recordingsOff(w) {
		return
	}
	q := recording.AuditQuery{Who: r.URL.Query().Get("who"), CallID: r.URL.Query().Get("call_id")}
	var ok bool
	if q.From, ok = timeParam(w, r, "from"); !ok {
		return
	}
	if q.To, ok = timeParam(w, r, "to"); !ok {
		return
	}
	if q.Limit, ok = limitParam(w, r, 10000); !ok {
		return
	}
	if len(q.Who) > 256 || (q.CallID != "" && !callIDPathRe.MatchString(q.CallID)) {
		badParam(w, "who must be at most 256 bytes and call_id a call id")
		return
	}
	acc, err := a.recs.Audit(r.Context(), q)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if acc == nil {
		acc = []recording.Access{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"accesses": acc})
}

// postRecordingStop stops a call's local recording: the agent on the call
// where the number's policy allows it, supervisors and admins always.
func (a *API) postRecordingStop(w http.ResponseWriter, r *http.Request, p principal) {
	id := r.PathValue("id")
	if !callIDPathRe.MatchString(id) {
		badParam(w, "id must be a call id")
		return
	}
	st, ok := a.calls.(RecordingStopper)
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "recording is not configured")
		return
	}
	agent := ""
	if p.role == RoleAgent {
		agent = p.agent
	}
	err := st.StopRecording(r.Context(), call.ID(id), agent)
	if errors.Is(err, signaling.ErrRecordingRefused) {
		writeError(w, http.StatusConflict, "recording_refused", "nothing is being recorded, or the number's policy does not let agents stop the recording")
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"call_id": id, "recording": "stopped"})
}

// RecordingStatus is a call's recording as the call log shows it.
type RecordingStatus struct {
	Kind      recording.Kind   `json:"kind"`
	Status    recording.Status `json:"status"`
	Attempts  int              `json:"attempts,omitempty"`
	LastError string           `json:"last_error,omitempty"`
}

// recordingStatuses gives the call log the recording status of its calls
// (nil without recording, or when the index cannot be read: the call log
// does not fail for it).
func (a *API) recordingStatuses(ctx context.Context, ids []string) map[string][]RecordingStatus {
	if a.recs == nil || len(ids) == 0 {
		return nil
	}
	m, err := a.recs.Statuses(ctx, ids)
	if err != nil {
		a.log.Warn("api: recording statuses unavailable for the call log", "err", err)
		return nil
	}
	out := make(map[string][]RecordingStatus, len(m))
	for id, es := range m {
		for _, e := range es {
			out[id] = append(out[id], RecordingStatus{Kind: e.Kind, Status: e.Status, Attempts: e.Attempts, LastError: e.LastError})
		}
	}
	return out
}
