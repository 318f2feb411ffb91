package doctor

import (
	"fmt"
	"io"
	"strings"
)

// Status is a check's outcome.
type Status int

// Statuses.
const (
	StatusUnknown Status = iota
	StatusOK
	StatusWarn    // works, but something is worth changing
	StatusFail    // calls will not work this way
	StatusSkipped // not configured or not possible from here
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusWarn:
		return "warn"
	case StatusFail:
		return "FAIL"
	case StatusSkipped:
		return "skip"
	}
	return "unknown"
}

// Check names.
const (
	CheckPublicAddress = "public address"
	CheckUDPReachable  = "media port reachable"
	CheckTURN          = "turn credentials"
	CheckGraph         = "graph api"
	CheckWebhook       = "webhook verification"
)

// Result is one check.
type Result struct {
	Name   string
	Status Status
	Detail string // what was seen
	Fix    string // what to change (failures and warnings)
}

// Report is every check, in order.
type Report []Result

// OK is true when no check failed.
func (r Report) OK() bool {
	for _, c := range r {
		if c.Status == StatusFail {
			return false
		}
	}
	return true
}

// Err is nil when no check failed, else ErrFailed naming the failed checks.
func (r Report) Err() error {
	var failed []string
	for _, c := range r {
		if c.Status == StatusFail {
			failed = append(failed, c.Name)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrFailed, strings.Join(failed, ", "))
}

// Get returns the first result named name.
func (r Report) Get(name string) (Result, bool) {
	for _, c := range r {
		if c.Name == name {
			return c, true
		}
	}
	return Result{}, false
}

// Write prints one line per check, then its fix indented.
func (r Report) Write(w io.Writer) {
	for _, c := range r {
		fmt.Fprintf(w, "[%-4s] %-22s %s\n", c.Status, c.Name, c.Detail)
		if c.Fix != "" && (c.Status == StatusFail || c.Status == StatusWarn) {
			fmt.Fprintf(w, "       fix: %s\n", c.Fix)
		}
	}
	if r.OK() {
		fmt.Fprintln(w, "all checks passed")
	} else {
		fmt.Fprintln(w, "some checks FAILED")
	}
}
