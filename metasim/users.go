package metasim

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/callgw/callgw/phone"
)

// bsuidRE is a business-scoped user id: ISO alpha-2 country, '.', optional
// "ENT." (parent BSUID), up to 128 alphanumerics.
var bsuidRE = regexp.MustCompile(`^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$`)

// IsBSUID reports whether s looks like a BSUID ("US.13491208655302741918") or
// a parent BSUID ("US.ENT.11815799212886844830").
func IsBSUID(s string) bool { return bsuidRE.MatchString(s) }

// simUser is one WhatsApp user as Meta knows them.
type simUser struct {
	key   string // phone digits, or the BSUID for a phone-less user
	phone string // wa_id digits ("" for a phone-less user)
	b     UserBehavior
}

// userView is how a user appears in webhooks at one moment.
type userView struct {
	phone, bsuid, parent, username, name string
}

func (u userView) contact() contact {
	return contact{Profile: profile{Name: u.name, Username: u.username}, WaID: u.phone, UserID: u.bsuid, ParentUserID: u.parent}
}

// view returns the user as webhooks show them now: the phone is withheld
// for BSUID-only users (UserBehavior.HidePhone or Adversary.HidePhoneNumbers).
func (s *Sim) view(u *simUser) userView {
	v := userView{phone: u.phone, bsuid: u.b.BSUID, parent: u.b.ParentBSUID, username: u.b.Username, name: u.b.name()}
	if u.b.HidePhone || s.hidePhones() {
		v.phone = ""
	}
	return v
}

// deriveBSUID gives a phone user a stable BSUID: the number's region and 20
// digits of a hash scoped to the simulated portfolio (the primary WABA).
func deriveBSUID(portfolio, waID string) string {
	cc := phone.RegionOf("+" + waID)
	if cc == "" {
		cc = "US"
	}
	h := sha256.Sum256([]byte(portfolio + "/" + waID))
	a, b := binary.BigEndian.Uint64(h[:8]), binary.BigEndian.Uint64(h[8:16])
	d := strconv.FormatUint(a%1e10, 10) + strconv.FormatUint(b%1e10, 10)
	return cc + "." + strings.Repeat("1", 20-len(d)) + d
}

// SetUser sets how a user behaves. id is the user's phone number (E.164,
// '+' optional) or, for a user without a phone number, their BSUID. A phone
// user without b.BSUID gets a derived one. Bad ids are ignored (logged); use
// AddUser to get the error.
func (s *Sim) SetUser(id string, b UserBehavior) {
	if err := s.AddUser(id, b); err != nil {
		s.log.Warn("metasim: SetUser ignored", "err", err)
	}
}

// AddUser is SetUser returning the error for a bad id or BSUID.
func (s *Sim) AddUser(id string, b UserBehavior) error {
	u := &simUser{b: b}
	switch {
	case IsBSUID(id):
		if b.BSUID != "" && b.BSUID != id {
			return fmt.Errorf("%w: BSUID %q differs from id", ErrInvalidNumber, b.BSUID)
		}
		u.key, u.b.BSUID = id, id
	default:
		n, err := normalizeNumber(id)
		if err != nil {
			return err
		}
		u.key, u.phone = n, n
		if u.b.BSUID == "" {
			u.b.BSUID = deriveBSUID(s.cfg.WABAID, n)
		}
	}
	if !IsBSUID(u.b.BSUID) || (u.b.ParentBSUID != "" && !IsBSUID(u.b.ParentBSUID)) {
		return fmt.Errorf("%w: malformed BSUID", ErrInvalidNumber)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.users[u.key]; old != nil {
		delete(s.byBSUID, old.b.BSUID)
		delete(s.byBSUID, old.b.ParentBSUID)
	}
	s.users[u.key] = u
	s.byBSUID[u.b.BSUID] = u.key
	if u.b.ParentBSUID != "" {
		s.byBSUID[u.b.ParentBSUID] = u.key
	}
	return nil
}

// userByPhone returns the user with wa_id n, creating a default one.
func (s *Sim) userByPhone(n string) *simUser {
	s.mu.Lock()
	u := s.users[n]
	s.mu.Unlock()
	if u != nil {
		return u
	}
	_ = s.AddUser(n, UserBehavior{})
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[n]
}

// resolveUser finds the user a request addresses: `to` (phone) wins over
// `recipient` (BSUID or parent BSUID) when both are given.
func (s *Sim) resolveUser(to, recipient, toName, recipientName string) (*simUser, *graphError) {
	switch {
	case to != "":
		n, err := normalizeNumber(to)
		if err != nil {
			return nil, errParam("Invalid parameter %s: not a WhatsApp phone number", toName)
		}
		return s.userByPhone(n), nil
	case recipient != "":
		if !IsBSUID(recipient) {
			return nil, errParam("Invalid parameter %s: not a business-scoped user id", recipientName)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		key, ok := s.byBSUID[recipient]
		if !ok {
			return nil, errParam("Invalid parameter %s: unknown business-scoped user id", recipientName)
		}
		return s.users[key], nil
	}
	return nil, errParam("The parameter %s or %s is required", toName, recipientName)
}

// userForCall resolves the caller of PlaceCall.
func (s *Sim) userForCall(o CallOptions) (*simUser, error) {
	if o.From != "" {
		n, err := normalizeNumber(o.From)
		if err != nil {
			return nil, err
		}
		u := s.userByPhone(n)
		if o.FromUserID != "" && o.FromUserID != u.b.BSUID {
			b := u.b
			b.BSUID = o.FromUserID
			if err := s.AddUser(n, b); err != nil {
				return nil, err
			}
			s.mu.Lock()
			u = s.users[n]
			s.mu.Unlock()
		}
		return u, nil
	}
	if o.FromUserID == "" {
		return nil, fmt.Errorf("%w: From or FromUserID is required", ErrInvalidNumber)
	}
	if !IsBSUID(o.FromUserID) {
		return nil, fmt.Errorf("%w: FromUserID %q is not a BSUID", ErrInvalidNumber, o.FromUserID)
	}
	s.mu.Lock()
	key, ok := s.byBSUID[o.FromUserID]
	s.mu.Unlock()
	if !ok {
		if err := s.AddUser(o.FromUserID, UserBehavior{Name: o.Name}); err != nil {
			return nil, err
		}
		key = o.FromUserID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[key], nil
}

// --- customer service window ---

// openWindow opens (refreshes) the 24 h customer service window of user key on num.
func (s *Sim) openWindow(num *bizNumber, key string, now time.Time) {
	s.mu.Lock()
	s.windows[num.PhoneNumberID+"|"+key] = now
	s.mu.Unlock()
}

// inWindow reports whether the user's customer service window is open at now.
func (s *Sim) inWindow(num *bizNumber, key string, now time.Time) bool {
	if s.cfg.AssumeWindowOpen {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.windows[num.PhoneNumberID+"|"+key]
	return ok && now.Before(t.Add(24*time.Hour))
}

// WindowOpen reports whether the user (phone or BSUID) has an open customer
// service window with the business number pnid ("" = primary).
func (s *Sim) WindowOpen(pnid, user string) bool {
	num := s.number(pnid)
	if num == nil {
		return false
	}
	u, gerr := s.lookup(user)
	if gerr != nil {
		return false
	}
	return s.inWindow(num, u.key, s.cfg.Clock())
}

// lookup finds a user by phone or BSUID.
func (s *Sim) lookup(id string) (*simUser, *graphError) {
	if IsBSUID(id) {
		return s.resolveUser("", id, "to", "recipient")
	}
	return s.resolveUser(id, "", "to", "recipient")
}
