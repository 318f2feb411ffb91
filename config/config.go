package config

import (
	"slices"
	"time"
)

// TeamID names a team; it is bounded by the configuration, so it may label
// metrics.
type TeamID string

// AgentID names an agent: the subject of their agent token.
type AgentID string

// AnyAgent, as a team's only member, means every agent that signs in: the
// team of the legacy single-number deployment.
const AnyAgent AgentID = "*"

// Strategy says how a team's agents are rung.
type Strategy uint8

const (
	StrategyUnknown Strategy = iota
	RingAll                  // every available member at once; the first to accept wins
	RoundRobin               // one member at a time, the next after the last one picked
	LongestIdle              // one member at a time, the one idle longest since their last call
)

var strategyNames = [...]string{"unknown", "ring_all", "round_robin", "longest_idle"}

func (s Strategy) String() string {
	if int(s) < len(strategyNames) {
		return strategyNames[s]
	}
	return "unknown"
}

// Sequential reports whether the strategy rings one agent at a time.
func (s Strategy) Sequential() bool { return s == RoundRobin || s == LongestIdle }

// ParseStrategy reads a strategy name as written in the file.
func ParseStrategy(s string) (Strategy, bool) {
	for i, n := range strategyNames {
		if i > 0 && n == s {
			return Strategy(i), true
		}
	}
	return StrategyUnknown, false
}

// Defaults of a team's optional settings.
const (
	DefaultStrategy = RingAll
	DefaultRingTime = 15 * time.Second // per agent, sequential strategies
	DefaultMaxWait  = 2 * time.Minute
	DefaultMaxSize  = 20
	MaxRingTime     = 5 * time.Minute
	MaxMaxWait      = 24 * time.Hour
)

// Config is the whole file: the numbers served and the teams answering
// them. Immutable once returned.
type Config struct {
	Source  string    // the file it came from ("<env>" for FromEnv)
	Agents  []AgentID // declared agents; empty = not declared (any id allowed)
	Numbers []Number
	Teams   []Team

	numbers map[string]int
	teams   map[TeamID]int
}

// Number is one WhatsApp business phone number.
type Number struct {
	PhoneNumberID      string   // Graph id of the number
	WABAID             string   // its WhatsApp Business Account
	Brand              string   // shown to agents
	TokenEnv           string   // environment variable holding its access token
	PermissionTemplate string   // "name:language", or "" (none: outside the window a request is refused)
	Teams              []TeamID // tried in order; the first is the number's own team
	HoldAudio          string   // Ogg/Opus file played while the caller waits; "" = the built-in hold music
	IVR                *IVR     // menus run before the queue (ivr.go); nil = none
	Line               int      // line of its entry in Source

	holdLine, holdColumn int

	// Recording is the number's recording policy (numbers[].recording, recording.go).
	Recording Recording
}

// Team is a group of agents rung together.
type Team struct {
	ID       TeamID
	Name     string
	Agents   []AgentID // in ring order for round_robin; [AnyAgent] = every agent
	Strategy Strategy
	RingTime time.Duration // per agent, sequential strategies (ring_seconds)
	MaxWait  time.Duration // a queued call leaves after this (to Overflow or missed); 0 = never
	MaxSize  int           // queued calls at most; 0 = no queue
	Overflow TeamID        // "" = none: an expired call is missed
	Line     int           // line of its entry in Source
}

// Any reports whether the team takes every agent.
func (t Team) Any() bool { return slices.Contains(t.Agents, AnyAgent) }

// Has reports whether agent is a member.
func (t Team) Has(agent AgentID) bool {
	return agent != "" && (t.Any() || slices.Contains(t.Agents, agent))
}

// Number returns the number with the Graph id.
func (c *Config) Number(phoneNumberID string) (Number, bool) {
	i, ok := c.numbers[phoneNumberID]
	if !ok {
		return Number{}, false
	}
	return c.Numbers[i], true
}

// Team returns the team with the id.
func (c *Config) Team(id TeamID) (Team, bool) {
	i, ok := c.teams[id]
	if !ok {
		return Team{}, false
	}
	return c.Teams[i], true
}

// TeamsOf lists the teams agent belongs to, in file order (wildcard teams
// included).
func (c *Config) TeamsOf(agent AgentID) []TeamID {
	var out []TeamID
	for _, t := range c.Teams {
		if t.Has(agent) {
			out = append(out, t.ID)
		}
	}
	return out
}

// TeamIDs lists every team id in file order.
func (c *Config) TeamIDs() []TeamID {
	out := make([]TeamID, len(c.Teams))
	for i, t := range c.Teams {
		out[i] = t.ID
	}
	return out
}

// PhoneNumberIDs lists every number's Graph id in file order.
func (c *Config) PhoneNumberIDs() []string {
	out := make([]string, len(c.Numbers))
	for i, n := range c.Numbers {
		out[i] = n.PhoneNumberID
	}
	return out
}

func (c *Config) index() {
	c.numbers = make(map[string]int, len(c.Numbers))
	for i, n := range c.Numbers {
		c.numbers[n.PhoneNumberID] = i
	}
	c.teams = make(map[TeamID]int, len(c.Teams))
	for i, t := range c.Teams {
		c.teams[t.ID] = i
	}
}
