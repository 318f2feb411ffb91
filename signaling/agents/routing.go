package agents

// Messages of routing (teams, queues, callbacks).

// TypeCallbacksChanged tells the pages that a team's callback tasks changed
// (created, claimed, closed): they reload the list over the REST API.
const TypeCallbacksChanged = "callbacks_changed"

// CallbacksChanged is the message of TypeCallbacksChanged.
type CallbacksChanged struct {
	Type string `json:"type"`
	Team string `json:"team"`
}
