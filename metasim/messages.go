package metasim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/callgw/callgw/phone"
)

// pricingChange is when Meta starts charging service messages and utility
// templates inside the customer service window (reference, Pricing).
var pricingChange = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)

type messageRequest struct {
	MessagingProduct string `json:"messaging_product"`
	RecipientType    string `json:"recipient_type"`
	To               string `json:"to"`
	Recipient        string `json:"recipient"`
	Type             string `json:"type"`
	Interactive      *struct {
		Type string `json:"type"`
		Body *struct {
			Text string `json:"text"`
		} `json:"body"`
		Header json.RawMessage `json:"header"`
		Footer json.RawMessage `json:"footer"`
		Action *struct {
			Name       string `json:"name"`
			Parameters *struct {
				DisplayText string `json:"display_text"`
				TTLMinutes  *int   `json:"ttl_minutes"`
				Payload     string `json:"payload"`
			} `json:"parameters"`
		} `json:"action"`
	} `json:"interactive"`
	Template *struct {
		Name     string `json:"name"`
		Language struct {
			Code string `json:"code"`
		} `json:"language"`
	} `json:"template"`
	Text *struct {
		Body string `json:"body"`
	} `json:"text"`
}

// sentMessage is a business message Meta accepted (for pricing_analytics).
type sentMessage struct {
	at       time.Time
	num      *bizNumber
	country  string
	category string
	typ      string // pricing type
	billable bool
}

func errReengagement() *graphError {
	e := errGraph(http.StatusBadRequest, 131047, "Re-engagement message")
	e.details = "Message failed to send because more than 24 hours have passed since the customer last replied to this number."
	return e
}

// graphMessages handles POST /{PNID}/messages: interactive
// call_permission_request and voice_call (inside the customer service window
// only, else 131047), templates (anywhere; one with a call_permission_request
// component is a permission request) and text (window only).
func (s *Sim) graphMessages(num *bizNumber, body []byte, rec *GraphRequest) (any, *graphError) {
	var req messageRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, errParam("Invalid JSON body: %v", err)
	}
	rec.To, rec.Recipient, rec.Action = req.To, req.Recipient, req.Type
	if req.MessagingProduct != "whatsapp" {
		return nil, errParam("The parameter messaging_product is required and must be \"whatsapp\"")
	}
	u, gerr := s.resolveUser(req.To, req.Recipient, "to", "recipient")
	if gerr != nil {
		return nil, gerr
	}
	now := s.cfg.Clock()
	inWindow := s.inWindow(num, u.key, now)
	var (
		category, ptype string
		permRequest     bool
	)
	switch req.Type {
	case "interactive":
		if req.Interactive == nil {
			return nil, errParam("The parameter interactive is required")
		}
		rec.Action = req.Interactive.Type
		switch req.Interactive.Type {
		case "call_permission_request":
			if req.Interactive.Action == nil || req.Interactive.Action.Name != "call_permission_request" {
				return nil, errParam("The parameter interactive.action.name must be \"call_permission_request\"")
			}
			if len(req.Interactive.Header) > 0 || len(req.Interactive.Footer) > 0 {
				return nil, errParam("call_permission_request messages take no header or footer")
			}
			permRequest = true
		case "voice_call":
			if gerr := checkVoiceCall(req); gerr != nil {
				return nil, gerr
			}
		default:
			return nil, errParam("Invalid parameter interactive.type %q", req.Interactive.Type)
		}
		if !inWindow {
			return nil, errReengagement()
		}
		category, ptype = "service", s.serviceType(now)
	case "text":
		if req.Text == nil || req.Text.Body == "" {
			return nil, errParam("The parameter text.body is required")
		}
		if !inWindow {
			return nil, errReengagement()
		}
		category, ptype = "service", s.serviceType(now)
	case "template":
		if req.Template == nil || req.Template.Name == "" {
			return nil, errParam("The parameter template.name is required")
		}
		s.mu.Lock()
		t, ok := s.templates[templateKey(num.WABAID, req.Template.Name, req.Template.Language.Code)]
		s.mu.Unlock()
		if !ok {
			e := errGraph(http.StatusNotFound, 132001, "Template name does not exist in the translation")
			e.details = fmt.Sprintf("template name (%s) does not exist in %s", req.Template.Name, req.Template.Language.Code)
			return nil, e
		}
		permRequest = t.PermissionRequest
		category, ptype = strings.ToLower(t.Category), "regular"
		if t.Category == "UTILITY" && inWindow {
			ptype = s.utilityInWindowType(now)
		}
	default:
		return nil, errParam("Invalid parameter type %q", req.Type)
	}
	if permRequest {
		if gerr := s.checkRequest(num, u.key, now); gerr != nil {
			return nil, gerr
		}
	}
	wamid := newID("wamid.")
	s.mu.Lock()
	s.sent = append(s.sent, sentMessage{at: now, num: num, country: userCountry(u), category: category, typ: ptype,
		billable: ptype == "regular"})
	s.mu.Unlock()
	s.deliverMessage(num, u, wamid, pricingObj{Billable: ptype == "regular", PricingModel: "PMP", Type: ptype, Category: category}, permRequest)
	c := map[string]any{"input": req.To}
	if req.To == "" {
		c["input"] = req.Recipient
	}
	if u.phone != "" && req.To != "" {
		c["wa_id"] = u.phone
	}
	if req.To == "" {
		c["user_id"] = u.b.BSUID
	}
	return map[string]any{
		"messaging_product": "whatsapp",
		"contacts":          []any{c},
		"messages":          []any{map[string]any{"id": wamid}},
	}, nil
}

func checkVoiceCall(req messageRequest) *graphError {
	a := req.Interactive.Action
	if a == nil || a.Name != "voice_call" {
		return errParam("The parameter interactive.action.name must be \"voice_call\"")
	}
	if req.Interactive.Body == nil || req.Interactive.Body.Text == "" {
		return errParam("The parameter interactive.body.text is required")
	}
	if p := a.Parameters; p != nil {
		if len([]rune(p.DisplayText)) > 20 {
			return errParam("Invalid parameter display_text: at most 20 characters")
		}
		if p.TTLMinutes != nil && (*p.TTLMinutes < 1 || *p.TTLMinutes > 43200) {
			return errParam("Invalid parameter ttl_minutes: 1 to 43200")
		}
		if len(p.Payload) > 512 {
			return errParam("Invalid parameter payload: at most 512 characters")
		}
	}
	return nil
}

// pricing is the current Pricing (SetPricing may change it).
func (s *Sim) pricing() Pricing {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Pricing
}

func (s *Sim) serviceType(now time.Time) string {
	if t := s.pricing().ServiceType; t != "" {
		return t
	}
	if now.Before(pricingChange) {
		return "free_customer_service"
	}
	return "regular"
}

func (s *Sim) utilityInWindowType(now time.Time) string {
	if t := s.pricing().UtilityInWindowType; t != "" {
		return t
	}
	return s.serviceType(now)
}

// deliverMessage queues the statuses of a business message (sent →
// delivered → read, or failed) and, for a permission request, the user's reply.
func (s *Sim) deliverMessage(num *bizNumber, u *simUser, wamid string, pr pricingObj, permRequest bool) {
	v := s.view(u)
	now := s.cfg.Clock()
	status := func(st string, withPricing bool, errs []metaError) {
		ms := msgStatus{ID: wamid, Status: st, Timestamp: epoch(now), RecipientID: v.phone,
			RecipientUserID: v.bsuid, RecipientParentUserID: v.parent, Errors: errs}
		if withPricing {
			p := pr
			ms.Pricing = &p
		}
		val := messagesValue{MessagingProduct: "whatsapp", Metadata: num.meta(), Statuses: []msgStatus{ms}}
		if st != "failed" {
			c := v.contact()
			if st == "sent" {
				c.Profile.Username = "" // username only on incoming, delivered, read
			}
			val.Contacts = []contact{c}
		} else if v.phone != "" {
			val.Statuses[0].RecipientUserID = "" // not on failed to a phone
		}
		s.enqueue(num, "messages", st, val, nil)
	}
	if code := u.b.MessageFailCode; code != 0 {
		status("failed", false, []metaError{{Code: code, Title: "Message undeliverable", Message: "Message undeliverable",
			ErrorData: &errorData{Details: "Message failed to send because the recipient cannot receive it"}}})
		return
	}
	status("sent", true, nil)
	status("delivered", true, nil)
	if !u.b.NoRead {
		status("read", false, nil)
	}
	if permRequest {
		s.answerPermission(num, u, wamid, now)
	}
}

// answerPermission plays the user's reply to a permission request.
func (s *Sim) answerPermission(num *bizNumber, u *simUser, wamid string, now time.Time) {
	v := s.view(u)
	switch u.b.Permission {
	case PermissionIgnore:
	case PermissionReject:
		s.sendPermissionReply(num, v, permissionReply{Response: "reject", ResponseSource: "user_action"}, wamid)
	case PermissionAcceptPermanent:
		s.grant(num, u.key, grantPermanent, now)
		s.sendPermissionReply(num, v, permissionReply{Response: "accept", IsPermanent: true, ResponseSource: "user_action"}, wamid)
	default:
		exp := s.grant(num, u.key, grantTemporary, now)
		s.sendPermissionReply(num, v, permissionReply{Response: "accept", ExpirationTimestamp: epoch(exp), ResponseSource: "user_action"}, wamid)
	}
}

func userCountry(u *simUser) string {
	if u.phone != "" {
		if r := phone.RegionOf("+" + u.phone); r != "" {
			return r
		}
	}
	if i := strings.IndexByte(u.b.BSUID, '.'); i == 2 {
		return u.b.BSUID[:2]
	}
	return ""
}

func templateKey(waba, name, lang string) string { return waba + "|" + name + "|" + lang }

// graphCreateTemplate handles POST /{WABA_ID}/message_templates. Templates are
// approved at once. A call_permission_request component needs category
// MARKETING or UTILITY and a BODY component.
func (s *Sim) graphCreateTemplate(waba string, body []byte) (any, *graphError) {
	var req struct {
		Name       string `json:"name"`
		Language   string `json:"language"`
		Category   string `json:"category"`
		Components []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"components"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, errParam("Invalid JSON body: %v", err)
	}
	if req.Name == "" || req.Language == "" {
		return nil, errParam("The parameters name and language are required")
	}
	if !contains([]string{"MARKETING", "UTILITY", "AUTHENTICATION"}, req.Category) {
		return nil, errParam("Invalid parameter category %q", req.Category)
	}
	t := Template{Name: req.Name, Language: req.Language, Category: req.Category}
	hasBody := false
	for _, c := range req.Components {
		switch strings.ToUpper(c.Type) {
		case "BODY":
			hasBody = c.Text != ""
		case "CALL_PERMISSION_REQUEST":
			t.PermissionRequest = true
		}
	}
	if !hasBody {
		return nil, errParam("A template needs a BODY component with text")
	}
	if t.PermissionRequest && t.Category == "AUTHENTICATION" {
		return nil, errParam("call_permission_request templates must be MARKETING or UTILITY")
	}
	s.mu.Lock()
	s.templates[templateKey(waba, t.Name, t.Language)] = t
	s.mu.Unlock()
	return map[string]any{"id": newID("")[:15], "status": "APPROVED", "category": t.Category}, nil
}

// SendUserMessage makes the user (phone or BSUID) send a text to business
// number pnid ("" = primary): a messages webhook, and the customer service
// window opens. It returns the message's wamid.
func (s *Sim) SendUserMessage(pnid, user, text string) (string, error) {
	num := s.number(pnid)
	if num == nil {
		return "", fmt.Errorf("%w: %q", ErrUnknownNumber, pnid)
	}
	if text == "" {
		return "", fmt.Errorf("%w: empty text", ErrInvalidMessage)
	}
	u, err := s.userFor(user)
	if err != nil {
		return "", err
	}
	now := s.cfg.Clock()
	s.openWindow(num, u.key, now)
	v := s.view(u)
	msg := inboundMessage{From: v.phone, FromUserID: v.bsuid, FromParentUserID: v.parent, ID: newID("wamid."),
		Timestamp: epoch(now), Type: "text", Text: &struct {
			Body string `json:"body"`
		}{Body: text}}
	s.enqueue(num, "messages", "text", messagesValue{MessagingProduct: "whatsapp", Metadata: num.meta(),
		Contacts: []contact{v.contact()}, Messages: []inboundMessage{msg}}, nil)
	return msg.ID, nil
}

// userFor finds a user by phone (created if new) or known BSUID.
func (s *Sim) userFor(id string) (*simUser, error) {
	u, gerr := s.lookup(id)
	if gerr != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidNumber, gerr.msg)
	}
	return u, nil
}

// ChangeUserNumber moves a phone user to a new number: Meta regenerates the
// BSUID and sends a user_changed_number system message (with
// previous_user_id) to every business number. Permissions and windows follow
// the user. It returns the new BSUID.
func (s *Sim) ChangeUserNumber(oldPhone, newPhone string) (string, error) {
	o, err := normalizeNumber(oldPhone)
	if err != nil {
		return "", err
	}
	n, err := normalizeNumber(newPhone)
	if err != nil {
		return "", err
	}
	u := s.userByPhone(o)
	b := u.b
	prev, prevParent := b.BSUID, b.ParentBSUID
	b.BSUID = deriveBSUID(s.cfg.WABAID+"/changed", n)
	if err := s.AddUser(n, b); err != nil {
		return "", err
	}
	s.mu.Lock()
	delete(s.users, o)
	delete(s.byBSUID, prev)
	s.rekeyLocked(o, n)
	nu := s.users[n]
	s.mu.Unlock()
	s.sendSystem(nu, "user_changed_number", fmt.Sprintf("User changed from %s to %s", mask(o), mask(n)), prev, prevParent, o)
	return b.BSUID, nil
}

// ChangeUserID gives the user (phone or BSUID) a new BSUID and sends a
// user_changed_user_id system message. It returns the new BSUID.
func (s *Sim) ChangeUserID(user string) (string, error) {
	u, err := s.userFor(user)
	if err != nil {
		return "", err
	}
	b := u.b
	prev, prevParent := b.BSUID, b.ParentBSUID
	b.BSUID = deriveBSUID(newID(""), u.key)
	id := u.key
	if u.phone == "" {
		id = b.BSUID
	}
	if err := s.AddUser(id, b); err != nil {
		return "", err
	}
	s.mu.Lock()
	if u.phone == "" {
		delete(s.users, u.key)
		s.rekeyLocked(u.key, id)
	}
	delete(s.byBSUID, prev)
	nu := s.users[id]
	s.mu.Unlock()
	s.sendSystem(nu, "user_changed_user_id", "User changed their user id", prev, prevParent, "")
	return b.BSUID, nil
}

// rekeyLocked moves permissions and windows from key o to n; s.mu held.
func (s *Sim) rekeyLocked(o, n string) {
	for _, num := range s.order {
		if p, ok := s.perms[permKey(num, o)]; ok {
			s.perms[permKey(num, n)] = p
			delete(s.perms, permKey(num, o))
		}
		if w, ok := s.windows[permKey(num, o)]; ok {
			s.windows[permKey(num, n)] = w
			delete(s.windows, permKey(num, o))
		}
	}
}

func (s *Sim) sendSystem(u *simUser, typ, body, prev, prevParent, oldPhone string) {
	v := s.view(u)
	now := s.cfg.Clock()
	for _, num := range s.order {
		from := v.phone
		if oldPhone != "" && from != "" {
			from = oldPhone
		}
		msg := inboundMessage{From: from, FromUserID: v.bsuid, ID: newID("wamid."), Timestamp: epoch(now), Type: "system",
			System: &systemMessage{Body: body, Type: typ, WaID: v.phone, UserID: v.bsuid,
				PreviousUserID: prev, PreviousParentUserID: prevParent, ParentUserID: v.parent}}
		s.enqueue(num, "messages", typ, messagesValue{MessagingProduct: "whatsapp", Metadata: num.meta(),
			Contacts: []contact{v.contact()}, Messages: []inboundMessage{msg}}, nil)
	}
}
