package api

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/callgw/callgw/signaling"
	"github.com/callgw/callgw/signaling/agents"
)

// pnidRe: a Graph phone-number id is digits.
var pnidRe = regexp.MustCompile(`^[0-9]{1,32}$`)

// Buttons is what the API needs to send call buttons (optional: found on
// the Calls given to New).
type Buttons interface {
	SendCallButton(ctx context.Context, b signaling.CallButton) (string, error)
}

// Settings is what the API needs to show a number's calling settings
// (optional: found on the Calls given to New).
type Settings interface {
	NumberSettings(ctx context.Context, pnid string) (json.RawMessage, error)
}

type callButtonBody struct {
	To          string `json:"to"`
	Text        string `json:"text"`
	DisplayText string `json:"display_text,omitempty"`
	TTLMinutes  int    `json:"ttl_minutes,omitempty"`
	Payload     string `json:"payload,omitempty"`
}

// postCallButton sends an interactive voice_call message (inside the
// user's customer service window).
func (a *API) postCallButton(w http.ResponseWriter, r *http.Request, _ principal) {
	var b callButtonBody
	if !decode(w, r, &b) {
		return
	}
	if !validUser(b.To) {
		writeError(w, http.StatusBadRequest, agents.CodeInvalidNumber, msgInvalidUser)
		return
	}
	if strings.TrimSpace(b.Text) == "" || !utf8.ValidString(b.Text) || utf8.RuneCountInString(b.Text) > maxTextRunes {
		writeError(w, http.StatusBadRequest, "bad_request", "\"text\" is required: UTF-8 of at most 1024 characters")
		return
	}
	if a.buttons == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "call buttons are not configured")
		return
	}
	id, err := a.buttons.SendCallButton(r.Context(), signaling.CallButton{To: b.To, Text: b.Text,
		DisplayText: b.DisplayText, TTLMinutes: b.TTLMinutes, Payload: b.Payload})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"message_id": id})
}

// getNumberSettings shows a number's calling settings as Meta reported
// them (read-only).
func (a *API) getNumberSettings(w http.ResponseWriter, r *http.Request, _ principal) {
	if !pnidRe.MatchString(r.PathValue("id")) {
		writeError(w, http.StatusBadRequest, "bad_request", "the number id must be a phone number id (digits)")
		return
	}
	if a.settings == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "settings are not available")
		return
	}
	raw, err := a.settings.NumberSettings(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if raw == nil {
		writeError(w, http.StatusNotFound, "not_found", "Meta has not reported this number's settings yet")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(raw)
}
