package signaling

import (
	"context"
	"encoding/json"
	"time"

	"github.com/callgw/callgw/config"
	"github.com/callgw/callgw/media"
	"github.com/callgw/callgw/signaling/agents"
	"github.com/callgw/callgw/signaling/cloudapi"
)

// Callers who wait: a user-initiated call callgw answered itself
// (lifecycle.StateWaiting) hears the number's hold audio until an agent
// takes it (route.go queues it).

// endWait (EndWait) runs when the caller stops waiting (an agent took the
// call, or it ended): it leaves its queue.
func (l *liveCall) endWait() { l.leaveQueue() }

// QueueEntry is one waiting caller, for supervisors.
type QueueEntry struct {
	Team          config.TeamID `json:"team"`
	TeamName      string        `json:"team_name"`
	CallID        string        `json:"call_id"`
	Position      int           `json:"position"`
	Since         time.Time     `json:"since"`
	WaitS         int64         `json:"wait_s"`
	MaxWaitS      int64         `json:"max_wait_s,omitempty"`
	From          string        `json:"from,omitempty"`
	Name          string        `json:"name,omitempty"`
	Brand         string        `json:"brand,omitempty"`
	PhoneNumberID string        `json:"phone_number_id,omitempty"`
}

// Queues lists every team's waiting callers, cluster-wide, in order (teams
// in configuration order).
func (c *Controller) Queues(ctx context.Context) ([]QueueEntry, error) {
	cfg := c.routingConfig()
	if cfg == nil {
		return []QueueEntry{}, nil
	}
	now := c.now()
	all, err := c.router.SnapshotAll(ctx, now)
	if err != nil {
		return nil, storeErr("queues", err)
	}
	infos := map[string]agents.CallInfo{}
	for _, ci := range c.allCalls() {
		infos[ci.ID] = ci
	}
	out := []QueueEntry{}
	for _, t := range cfg.Teams {
		for _, e := range all[t.ID] {
			q := QueueEntry{Team: t.ID, TeamName: t.Name, CallID: string(e.Call), Position: e.Position, Since: e.Since.UTC(),
				WaitS: int64(e.Wait / time.Second), MaxWaitS: int64(t.MaxWait / time.Second)}
			if ci, ok := infos[q.CallID]; ok {
				q.From, q.Name, q.Brand, q.PhoneNumberID = ci.From, ci.Name, ci.Brand, ci.PhoneNumberID
			}
			out = append(out, q)
		}
	}
	return out, nil
}

// playHold plays the number's hold audio to the waiting caller, looped.
func (l *liveCall) playHold() {
	if l.bridge == nil {
		return
	}
	var p *media.Prompt
	if l.c.holdAudio != nil {
		p = l.c.holdAudio(l.lc.Rec.PhoneNumberID)
	}
	if p == nil {
		var err error
		if p, err = media.BuiltinPrompt("hold"); err != nil {
			l.log.Warn("no hold audio", "err", err)
			return
		}
	}
	if _, err := l.bridge.Play([]*media.Prompt{p}, media.PlayOptions{Loop: true}); err != nil {
		l.log.Warn("cannot play the hold audio", "err", err)
	}
}

// stopPlayback (StopPlayback) stops prompts: the agent is connected.
func (l *liveCall) stopPlayback() {
	if l.bridge != nil {
		l.bridge.StopPlayback()
	}
}

// NumberView is a business number as pages show it.
type NumberView struct {
	PhoneNumberID string   `json:"phone_number_id"`
	Brand         string   `json:"brand"`
	Teams         []string `json:"teams"`
	// Hours are the number's call hours and holidays as Meta last
	// reported them (GET /settings at start, account_settings_update
	// webhooks, PUT /numbers/{id}/settings); nil when never read.
	Hours *cloudapi.CallHours `json:"call_hours,omitempty"`
	// CallingStatus is Meta's calling.status (ENABLED, DISABLED; "" unknown).
	CallingStatus string `json:"calling_status,omitempty"`
	// OpenNow says whether the number is inside its call hours now (nil:
	// unknown, e.g. hours never read or an unknown time zone).
	OpenNow *bool `json:"open_now,omitempty"`
}

// TeamView is a team as pages show it.
type TeamView struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Strategy string   `json:"strategy"`
	Agents   []string `json:"agents"`
	MaxWaitS int64    `json:"max_wait_s"`
	MaxSize  int      `json:"max_size"`
	Overflow string   `json:"overflow,omitempty"`
}

// RoutingView is the numbers and teams in force; for an agent, only their
// teams and the numbers those teams answer (the numbers they may call from).
type RoutingView struct {
	Numbers []NumberView `json:"numbers"`
	Teams   []TeamView   `json:"teams"`
}

// RoutingView describes the configuration in force (for agent, or for
// everybody when agent is "").
func (c *Controller) RoutingView(agent string) RoutingView {
	v := RoutingView{Numbers: []NumberView{}, Teams: []TeamView{}}
	cfg := c.routingConfig()
	if cfg == nil {
		return v
	}
	for _, t := range cfg.Teams {
		if agent != "" && !t.Has(config.AgentID(agent)) {
			continue
		}
		tv := TeamView{ID: string(t.ID), Name: t.Name, Strategy: t.Strategy.String(), MaxWaitS: int64(t.MaxWait / time.Second),
			MaxSize: t.MaxSize, Overflow: string(t.Overflow)}
		for _, a := range t.Agents {
			tv.Agents = append(tv.Agents, string(a))
		}
		v.Teams = append(v.Teams, tv)
	}
	for _, n := range c.numbersOf(agent) {
		nv := NumberView{PhoneNumberID: n.PhoneNumberID, Brand: n.Brand}
		c.numberHours(&nv)
		for _, t := range n.Teams {
			nv.Teams = append(nv.Teams, string(t))
		}
		v.Numbers = append(v.Numbers, nv)
	}
	return v
}

// numbersOf lists the numbers whose teams include agent (every number for
// agent ""): the numbers an agent may call from.
func (c *Controller) numbersOf(agent string) []config.Number {
	cfg := c.routingConfig()
	if cfg == nil {
		return nil
	}
	var out []config.Number
	for _, n := range cfg.Numbers {
		if agent == "" {
			out = append(out, n)
			continue
		}
		for _, id := range n.Teams {
			if t, ok := cfg.Team(id); ok && t.Has(config.AgentID(agent)) {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

// numberHours fills a number's call hours from the settings Meta last
// reported (kept in the store).
func (c *Controller) numberHours(nv *NumberView) {
	ctx, cancel := c.opCtx(2 * time.Second)
	defer cancel()
	raw, err := c.store.settings(ctx, nv.PhoneNumberID)
	if err != nil || len(raw) == 0 {
		return
	}
	var s struct {
		Status    string              `json:"status"`
		CallHours *cloudapi.CallHours `json:"call_hours"`
	}
	if json.Unmarshal(raw, &s) != nil {
		return
	}
	nv.CallingStatus = s.Status
	if s.CallHours == nil {
		return
	}
	nv.Hours = s.CallHours
	if open, known := CallHoursOpen(*s.CallHours, c.now()); known {
		nv.OpenNow = &open
	}
}
