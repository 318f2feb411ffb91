package config

import (
	"errors"
	"fmt"
)

// Sentinel errors, matched with errors.Is on what Parse, Load and Reload
// return (a join of *Error values, one per problem found).
var (
	// ErrSyntax means the file is not well-formed YAML.
	ErrSyntax = errors.New("config: bad yaml")
	// ErrUnknownField means a key the format does not define (a typo).
	ErrUnknownField = errors.New("config: unknown field")
	// ErrMissingField means a required key is absent or empty.
	ErrMissingField = errors.New("config: missing field")
	// ErrBadValue means a value of the wrong type or out of range.
	ErrBadValue = errors.New("config: bad value")
	// ErrBadDuration means a duration that does not parse (e.g. "90s"
	// expected) or is negative or out of range.
	ErrBadDuration = errors.New("config: bad duration")
	// ErrUnknownStrategy means a ring strategy other than ring_all,
	// round_robin and longest_idle.
	ErrUnknownStrategy = errors.New("config: unknown ring strategy")
	// ErrUnknownTeam means a number or an overflow names a team that is not
	// declared.
	ErrUnknownTeam = errors.New("config: unknown team")
	// ErrUnknownAgent means a team names an agent missing from the declared
	// agents list (only checked when the file declares agents).
	ErrUnknownAgent = errors.New("config: unknown agent")
	// ErrDuplicateNumber means two numbers share a phone_number_id.
	ErrDuplicateNumber = errors.New("config: duplicate number")
	// ErrDuplicateTeam means two teams share an id.
	ErrDuplicateTeam = errors.New("config: duplicate team")
	// ErrDuplicateAgent means an agent is declared, or listed in one team,
	// twice.
	ErrDuplicateAgent = errors.New("config: duplicate agent")
	// ErrAgentInNoTeam means a declared agent belongs to no team.
	ErrAgentInNoTeam = errors.New("config: agent in no team")
	// ErrOverflowCycle means following overflow teams comes back to a team
	// already visited.
	ErrOverflowCycle = errors.New("config: overflow cycle")
	// ErrBadTemplate means a permission template not written name:language.
	ErrBadTemplate = errors.New("config: bad permission template")
	// ErrHoldAudio means a hold_audio file cannot be read or is not Ogg
	// Opus (checked by Load, not Parse).
	ErrHoldAudio = errors.New("config: bad hold audio")
	// ErrNoFile means CALLGW_CONFIG names a file that cannot be read.
	ErrNoFile = errors.New("config: cannot read file")
)

// Error is one problem in a configuration file, at a line and column
// (1-based; 0 when the problem is about the whole file).
type Error struct {
	Source string // file name, or "<env>" for FromEnv
	Line   int
	Column int
	Path   string // where in the document, e.g. "teams[1].strategy"
	Msg    string
	Err    error // one of the sentinels above
}

func (e *Error) Error() string {
	loc := e.Source
	switch {
	case e.Line > 0 && e.Column > 0:
		loc = fmt.Sprintf("%s:%d:%d", e.Source, e.Line, e.Column)
	case e.Line > 0:
		loc = fmt.Sprintf("%s:%d", e.Source, e.Line)
	}
	if e.Path != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Path, e.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }
