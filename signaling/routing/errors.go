package routing

import "errors"

var (
	// ErrUnknownTeam means the team is not in the configuration in force.
	ErrUnknownTeam = errors.New("routing: unknown team")
	// ErrNoAgent means no member of the team is available and unreserved.
	ErrNoAgent = errors.New("routing: no agent available")
	// ErrAgentReserved means the agent is reserved for another call.
	ErrAgentReserved = errors.New("routing: agent reserved for another call")
	// ErrNotReserved means Release found no reservation of that agent for
	// that call (expired, or held by another call); nothing was changed.
	ErrNotReserved = errors.New("routing: agent not reserved for this call")
	// ErrQueueFull means the team's queue holds max_size calls (or the team
	// has no queue: max_size 0).
	ErrQueueFull = errors.New("routing: queue full")
	// ErrQueueEmpty means no call is waiting.
	ErrQueueEmpty = errors.New("routing: queue empty")
	// ErrNotQueued means the call is not in the team's queue.
	ErrNotQueued = errors.New("routing: call not queued")
	// ErrNoTask means no callback task has that id in the team.
	ErrNoTask = errors.New("routing: no such task")
	// ErrTaskClaimed means another agent claimed the task first.
	ErrTaskClaimed = errors.New("routing: task claimed by another agent")
	// ErrTaskClosed means the task is closed.
	ErrTaskClosed = errors.New("routing: task closed")
	// ErrInvalidArgument means an empty or malformed id, user or time;
	// nothing was changed.
	ErrInvalidArgument = errors.New("routing: invalid argument")
	// ErrUnavailable means Redis failed or did not answer.
	ErrUnavailable = errors.New("routing: redis unavailable")
)
