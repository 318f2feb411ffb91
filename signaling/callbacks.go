package signaling

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/callgw/callgw/config"
	"github.com/callgw/callgw/permissions"
	"github.com/callgw/callgw/phone"
	"github.com/callgw/callgw/signaling/agents"
	"github.com/callgw/callgw/signaling/routing"
)

// Callback tasks: every missed user-initiated call becomes a task of the
// team it was for (the number's first team), visible to that team's agents
// with the user's permission state, claimable by one agent, and closed when
// any call reaches the user (an inbound call answered by an agent, or an
// outbound call picked up).

// CallbackTask is a task as the API and pages show it.
type CallbackTask struct {
	ID        string    `json:"id"`
	Team      string    `json:"team"`
	TeamName  string    `json:"team_name,omitempty"`
	Brands    []string  `json:"brands,omitempty"` // brands of the numbers whose first team this is
	State     string    `json:"state"`            // open | claimed | closed
	User      string    `json:"user"`             // phone number (masked unless full) or BSUID
	Name      string    `json:"name,omitempty"`
	Missed    int       `json:"missed"`
	FirstCall string    `json:"first_call"`
	LastCall  string    `json:"last_call"`
	Created   time.Time `json:"created_at"`
	Updated   time.Time `json:"updated_at"`
	Agent     string    `json:"agent,omitempty"`
	ClosedBy  string    `json:"closed_by,omitempty"`
	ClosedAt  time.Time `json:"closed_at,omitzero"`
	// Permission is the user's call permission with the task's business
	// number (the first number whose own team this is; can_call: may an
	// agent call back now from it?); nil when unknown.
	Permission *permissions.Decision `json:"permission,omitempty"`
	// CallBack is what a page passes to dial (the full number or the BSUID):
	// present only for callers allowed to see it (full numbers), else the
	// page dials by call_id.
	CallBack string `json:"call_back,omitempty"`
}

// TaskFilter selects tasks.
type TaskFilter struct {
	Teams []config.TeamID // none: every team
	State string          // "" = open and claimed; open | claimed | closed
	Agent string          // only the teams this agent is in ("" = any)
	Full  bool            // full numbers
	Limit int
}

// ErrNoRouting: the deployment runs without teams (no Router).
var ErrNoRouting = errors.New("signaling: no numbers-and-teams configuration")

func parseTaskState(s string) (routing.TaskState, bool) {
	for _, st := range []routing.TaskState{routing.TaskOpen, routing.TaskClaimed, routing.TaskClosed} {
		if st.String() == s {
			return st, true
		}
	}
	return routing.TaskUnknown, false
}

// Callbacks lists callback tasks, newest first per team.
func (c *Controller) Callbacks(ctx context.Context, f TaskFilter) ([]CallbackTask, error) {
	cfg := c.routingConfig()
	if cfg == nil {
		return []CallbackTask{}, nil
	}
	states := []routing.TaskState{routing.TaskOpen, routing.TaskClaimed}
	if f.State != "" {
		st, ok := parseTaskState(f.State)
		if !ok {
			return nil, fmt.Errorf("%w: state must be open, claimed or closed", ErrBadCommand)
		}
		states = []routing.TaskState{st}
	}
	teams := f.Teams
	if len(teams) == 0 {
		teams = cfg.TeamIDs()
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	out := []CallbackTask{}
	for _, team := range teams {
		t, ok := cfg.Team(team)
		if !ok {
			return nil, fmt.Errorf("%w: %q", routing.ErrUnknownTeam, team)
		}
		if f.Agent != "" && !t.Has(config.AgentID(f.Agent)) {
			continue
		}
		for _, st := range states {
			ts, err := c.router.Tasks(ctx, team, st, f.Limit)
			if err != nil {
				return nil, storeErr("callbacks", err)
			}
			for _, task := range ts {
				out = append(out, c.taskView(ctx, cfg, task, f.Full))
			}
		}
	}
	return out, nil
}

func (c *Controller) taskView(ctx context.Context, cfg *config.Config, t routing.Task, full bool) CallbackTask {
	v := CallbackTask{ID: t.ID, Team: string(t.Team), State: t.State.String(), Missed: t.Missed, FirstCall: string(t.FirstCall),
		LastCall: string(t.LastCall), Created: t.Created.UTC(), Updated: t.Updated.UTC(), Agent: string(t.Agent), ClosedBy: t.ClosedBy,
		ClosedAt: t.ClosedAt, Name: t.User.Name}
	if tm, ok := cfg.Team(t.Team); ok {
		v.TeamName = tm.Name
	}
	if !full && c.cfg.MaskNumbers {
		v.Name = "" // as the call log: masked views carry no profile name
	} else if v.Name == "" {
		// Tasks keep ids only: the name comes from the last missed call (kept StateTTL).
		if sc, err := c.store.load(ctx, t.LastCall); err == nil {
			v.Name = sc.Record.UserName
		}
	}
	business := c.cfg.PhoneNumberID // whose permission the task shows: its number's (the first of the team's)
	for _, n := range cfg.Numbers {
		if len(n.Teams) > 0 && n.Teams[0] == t.Team && !slices.Contains(v.Brands, n.Brand) {
			if len(v.Brands) == 0 {
				business = n.PhoneNumberID
			}
			v.Brands = append(v.Brands, n.Brand)
		}
	}
	v.User = t.User.BSUID
	if t.User.Phone.E164 != "" {
		v.User = t.User.Phone.E164
		if !full && c.cfg.MaskNumbers {
			v.User = phone.Mask(v.User)
		}
	}
	if full || !c.cfg.MaskNumbers {
		v.CallBack = t.User.Phone.E164
		if v.CallBack == "" {
			v.CallBack = t.User.BSUID
		}
	}
	if c.perms != nil && t.State != routing.TaskClosed {
		if d, err := c.perms.State(ctx, permissions.Pair{Business: business, User: t.User.Key()}); err == nil {
			v.Permission = &d
		}
	}
	return v
}

// findTask finds a task by id in any team.
func (c *Controller) findTask(ctx context.Context, id string) (routing.Task, error) {
	cfg := c.routingConfig()
	if cfg == nil {
		return routing.Task{}, ErrNoRouting
	}
	for _, team := range cfg.TeamIDs() {
		t, err := c.router.Task(ctx, team, id)
		if err == nil {
			return t, nil
		}
		if !errors.Is(err, routing.ErrNoTask) {
			return routing.Task{}, storeErr("callback", err)
		}
	}
	return routing.Task{}, routing.ErrNoTask
}

// ErrNotInTeam: the agent is not in the task's team.
var ErrNotInTeam = errors.New("signaling: not a member of the task's team")

// ClaimCallback lets agent take a task of one of their teams (supervisors:
// any, with agent naming whom it is for).
func (c *Controller) ClaimCallback(ctx context.Context, id, agent string, anyTeam bool) (CallbackTask, error) {
	t, err := c.findTask(ctx, id)
	if err != nil {
		return CallbackTask{}, err
	}
	cfg := c.routingConfig()
	if tm, ok := cfg.Team(t.Team); !anyTeam && (!ok || !tm.Has(config.AgentID(agent))) {
		return CallbackTask{}, ErrNotInTeam
	}
	t, err = c.router.Claim(ctx, t.Team, id, config.AgentID(agent))
	if err != nil {
		return CallbackTask{}, err
	}
	c.callbacksChanged(t.Team)
	return c.taskView(ctx, cfg, t, false), nil
}

// UnclaimCallback gives a claimed task back (only its claimer, or anyTeam).
func (c *Controller) UnclaimCallback(ctx context.Context, id, agent string, anyTeam bool) (CallbackTask, error) {
	t, err := c.findTask(ctx, id)
	if err != nil {
		return CallbackTask{}, err
	}
	who := config.AgentID(agent)
	if anyTeam && t.Agent != "" {
		who = t.Agent
	}
	if err := c.router.Unclaim(ctx, t.Team, id, who); err != nil {
		return CallbackTask{}, err
	}
	c.callbacksChanged(t.Team)
	t, err = c.router.Task(ctx, t.Team, id)
	if err != nil {
		return CallbackTask{}, storeErr("callback", err)
	}
	return c.taskView(ctx, c.routingConfig(), t, false), nil
}

// callbacksChanged tells the pages that a team's tasks changed (they
// reload the list).
func (c *Controller) callbacksChanged(team config.TeamID) {
	c.tell(audience{}, agents.CallbacksChanged{Type: agents.TypeCallbacksChanged, Team: string(team)})
}

// missed makes a callback task of a missed user-initiated call, for the
// number's first team.
func (l *liveCall) missed() {
	c := l.c
	r := l.lc.Rec
	cfg := c.routingConfig()
	if cfg == nil {
		return
	}
	n, ok := cfg.Number(r.PhoneNumberID)
	if !ok || len(n.Teams) == 0 {
		return
	}
	u := recUser(r)
	if !u.Known() {
		return
	}
	ctx, cancel := c.opCtx(3 * time.Second)
	defer cancel()
	t, created, err := c.router.CreateTask(ctx, n.Teams[0], u, r.ID, c.now())
	if err != nil {
		l.log.Warn("callbacks: cannot create the task of a missed call", "err", err)
		return
	}
	l.log.Info("callback task", "task", t.ID, "team", string(t.Team), "created", created)
	c.callbacksChanged(t.Team)
}

// userReached closes the user's callback tasks: a call reached them.
func (l *liveCall) userReached() {
	c := l.c
	u := recUser(l.lc.Rec)
	if !u.Known() {
		return
	}
	ctx, cancel := c.opCtx(3 * time.Second)
	defer cancel()
	ts, err := c.router.CloseForUser(ctx, u, l.id)
	if err != nil {
		l.log.Warn("callbacks: cannot close the user's tasks", "err", err)
		return
	}
	for _, t := range ts {
		l.log.Info("callback task closed", "task", t.ID)
		c.callbacksChanged(t.Team)
	}
}
