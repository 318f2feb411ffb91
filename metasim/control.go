package metasim

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// ControlHandler is a small JSON API for the demo page:
//
//	POST /calls            {"from","name","audio":"greeting|tone","deeplink_payload"} -> {"id"}
//	POST /calls/{id}/hangup
//	POST /calls/{id}/dtmf  {"digits"}
//	GET  /calls            -> [{"id","direction","user","name","state","ended_by","received_packets","dtmf"}]
//	PUT  /users/{id}       {"permission","answer","answer_after_ms","name","username","hide_phone"} (id: phone or BSUID)
//	POST /users/{id}/messages {"text","to"} -> {"id"}   (opens the 24 h customer service window)
//	POST /users/{id}/change_number {"new_number"} -> {"user_id"}
//	POST /users/{id}/change_user_id -> {"user_id"}
//	POST /calls/{id}/fail  {"code"}   (terminate-only error 138019-138023)
func (s *Sim) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /calls", s.ctlPlace)
	mux.HandleFunc("GET /calls", s.ctlList)
	mux.HandleFunc("POST /calls/{id}/hangup", s.ctlHangup)
	mux.HandleFunc("POST /calls/{id}/dtmf", s.ctlDTMF)
	mux.HandleFunc("PUT /users/{number}", s.ctlUser)
	mux.HandleFunc("POST /users/{id}/messages", s.ctlUserMessage)
	mux.HandleFunc("POST /users/{id}/change_number", s.ctlChangeNumber)
	mux.HandleFunc("POST /users/{id}/change_user_id", s.ctlChangeUserID)
	mux.HandleFunc("POST /calls/{id}/fail", s.ctlFail)
	return mux
}

func ctlError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func (s *Sim) ctlPlace(w http.ResponseWriter, r *http.Request) {
	var req struct {
		From            string `json:"from"`
		Name            string `json:"name"`
		Audio           string `json:"audio"`
		DeeplinkPayload string `json:"deeplink_payload"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	o := CallOptions{From: req.From, Name: req.Name, DeeplinkPayload: req.DeeplinkPayload}
	switch req.Audio {
	case "", "greeting":
	case "tone":
		o.Audio = toneOgg
	default:
		ctlError(w, http.StatusBadRequest, errors.New(`audio must be "greeting" or "tone"`))
		return
	}
	c, err := s.PlaceCall(r.Context(), o)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, ErrPeer) || errors.Is(err, ErrClosed) {
			status = http.StatusServiceUnavailable
		}
		ctlError(w, status, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": c.ID()})
}

func (s *Sim) ctlList(w http.ResponseWriter, _ *http.Request) {
	type item struct {
		ID              string `json:"id"`
		Direction       string `json:"direction"`
		User            string `json:"user"`
		Name            string `json:"name"`
		State           string `json:"state"`
		EndedBy         string `json:"ended_by,omitempty"`
		ReceivedPackets int    `json:"received_packets"`
		DTMF            string `json:"dtmf"`
	}
	out := []item{}
	for _, c := range s.Calls() {
		out = append(out, item{ID: c.id, Direction: c.dir.String(), User: c.user, Name: c.name,
			State: c.State().String(), EndedBy: c.EndedBy(), ReceivedPackets: c.ReceivedCount(), DTMF: c.ReceivedDTMF()})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Sim) ctlHangup(w http.ResponseWriter, r *http.Request) {
	c, ok := s.Call(r.PathValue("id"))
	if !ok {
		ctlError(w, http.StatusNotFound, ErrUnknownCall)
		return
	}
	if err := c.Hangup(r.Context()); err != nil {
		ctlError(w, http.StatusConflict, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (s *Sim) ctlDTMF(w http.ResponseWriter, r *http.Request) {
	c, ok := s.Call(r.PathValue("id"))
	if !ok {
		ctlError(w, http.StatusNotFound, ErrUnknownCall)
		return
	}
	var req struct {
		Digits string `json:"digits"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<12)).Decode(&req); err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	if err := c.SendDTMF(req.Digits); err != nil {
		status := http.StatusConflict
		if errors.Is(err, ErrInvalidDigits) {
			status = http.StatusBadRequest
		}
		ctlError(w, status, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (s *Sim) ctlUser(w http.ResponseWriter, r *http.Request) {
	n := r.PathValue("number")
	if !IsBSUID(n) {
		var err error
		if n, err = normalizeNumber(n); err != nil {
			ctlError(w, http.StatusBadRequest, err)
			return
		}
	}
	var req struct {
		Permission    string `json:"permission"`
		Answer        string `json:"answer"`
		AnswerAfterMS int    `json:"answer_after_ms"`
		Name          string `json:"name"`
		Username      string `json:"username"`
		HidePhone     bool   `json:"hide_phone"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<12)).Decode(&req); err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	b := UserBehavior{AnswerAfter: time.Duration(req.AnswerAfterMS) * time.Millisecond, Name: req.Name,
		Username: req.Username, HidePhone: req.HidePhone}
	var ok1, ok2 bool
	for i, nm := range permissionNames {
		if nm == req.Permission || (req.Permission == "" && i == 0) {
			b.Permission, ok1 = PermissionReply(i), true
		}
	}
	for i, nm := range answerNames {
		if nm == req.Answer || (req.Answer == "" && i == 0) {
			b.Answer, ok2 = CallAnswer(i), true
		}
	}
	if !ok1 || !ok2 || req.AnswerAfterMS < 0 {
		ctlError(w, http.StatusBadRequest, errors.New("permission must be accept|accept_permanent|reject|ignore, answer must be answer|decline|no_answer"))
		return
	}
	if err := s.AddUser(n, b); err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (s *Sim) ctlUserMessage(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Text string `json:"text"`
		To   string `json:"to"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	id, err := s.SendUserMessage(req.To, r.PathValue("id"), req.Text)
	if err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id})
}

func (s *Sim) ctlChangeNumber(w http.ResponseWriter, r *http.Request) {
	var req struct {
		NewNumber string `json:"new_number"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<12)).Decode(&req); err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	id, err := s.ChangeUserNumber(r.PathValue("id"), req.NewNumber)
	if err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"user_id": id})
}

func (s *Sim) ctlChangeUserID(w http.ResponseWriter, r *http.Request) {
	id, err := s.ChangeUserID(r.PathValue("id"))
	if err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"user_id": id})
}

func (s *Sim) ctlFail(w http.ResponseWriter, r *http.Request) {
	c, ok := s.Call(r.PathValue("id"))
	if !ok {
		ctlError(w, http.StatusNotFound, ErrUnknownCall)
		return
	}
	var req struct {
		Code int `json:"code"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<12)).Decode(&req); err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	if err := c.EndWithError(req.Code); err != nil {
		status := http.StatusConflict
		if errors.Is(err, ErrInvalidCode) {
			status = http.StatusBadRequest
		}
		ctlError(w, status, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}
