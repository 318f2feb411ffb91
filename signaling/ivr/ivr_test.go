package ivr

import (
	"reflect"
	"testing"
	"time"

	"github.com/callgw/callgw/config"
)

func tree() *config.IVR {
	return &config.IVR{Start: "hello", Nodes: map[string]config.IVRNode{
		"hello": {ID: "hello", Kind: config.IVRPlay, Prompt: "builtin:welcome", Next: "main"},
		"main": {ID: "main", Kind: config.IVRMenu, Prompt: "menu.opus", Options: map[string]string{"1": "sales", "2": "support", "9": "later", "0": "bye"},
			Timeout: 5 * time.Second, Retries: 1, Invalid: "builtin:goodbye", Fallback: "sales"},
		"strict":  {ID: "strict", Kind: config.IVRMenu, Prompt: "menu.opus", Options: map[string]string{"1": "sales"}, Timeout: time.Second},
		"sales":   {ID: "sales", Kind: config.IVRTeam, Team: "1"},
		"support": {ID: "support", Kind: config.IVRTeam, Team: "2"},
		"later":   {ID: "later", Kind: config.IVRCallback},
		"bye":     {ID: "bye", Kind: config.IVRHangup},
	}}
}

func TestStep(t *testing.T) {
	strict := tree()
	strict.Start = "strict"
	tests := []struct {
		name   string
		iv     *config.IVR
		events []Event
		last   []Action // actions of the last event
		path   []string
		done   bool
	}{
		{name: "start plays the welcome", events: []Event{Start{}},
			last: []Action{Visit{Node: "hello", Kind: config.IVRPlay}, Play{Prompts: []string{"builtin:welcome"}, Seq: 1}}, path: []string{"hello"}},
		{name: "welcome done: the menu", events: []Event{Start{}, PromptDone{Seq: 1}},
			last: []Action{Visit{Node: "main", Kind: config.IVRMenu}, Play{Prompts: []string{"menu.opus"}, Seq: 2}}, path: []string{"hello", "main"}},
		{name: "menu prompt done: wait for a key", events: []Event{Start{}, PromptDone{Seq: 1}, PromptDone{Seq: 2}},
			last: []Action{Wait{After: 5 * time.Second, Seq: 3}}},
		{name: "2 routes to team 2", events: []Event{Start{}, PromptDone{Seq: 1}, PromptDone{Seq: 2}, Digit{Key: '2'}},
			last: []Action{Visit{Node: "support", Kind: config.IVRTeam}, Route{Team: "2"}}, path: []string{"hello", "main", "support"}, done: true},
		{name: "a key during the menu prompt stops it", events: []Event{Start{}, PromptDone{Seq: 1}, Digit{Key: '1'}},
			last: []Action{StopPlay{}, Visit{Node: "sales", Kind: config.IVRTeam}, Route{Team: "1"}}, done: true},
		{name: "keys before a menu are ignored", events: []Event{Start{}, Digit{Key: '2'}}, last: nil, path: []string{"hello"}},
		{name: "a wrong key: the invalid prompt, then the menu", events: []Event{Start{}, PromptDone{Seq: 1}, PromptDone{Seq: 2}, Digit{Key: '7'}, PromptDone{Seq: 4}},
			last: []Action{Play{Prompts: []string{"menu.opus"}, Seq: 5}}},
		{name: "a stale timer is ignored", events: []Event{Start{}, PromptDone{Seq: 1}, PromptDone{Seq: 2}, Digit{Key: '7'}, Timeout{Seq: 3}}, last: nil},
		{name: "a stale prompt end is ignored", events: []Event{Start{}, PromptDone{Seq: 1}, PromptDone{Seq: 1}}, last: nil},
		{name: "timeouts past the retries: the fallback", events: []Event{Start{}, PromptDone{Seq: 1}, PromptDone{Seq: 2}, Timeout{Seq: 3},
			PromptDone{Seq: 4}, PromptDone{Seq: 5}, Timeout{Seq: 6}},
			last: []Action{Visit{Node: "sales", Kind: config.IVRTeam}, Route{Team: "1"}}, path: []string{"hello", "main", "sales"}, done: true},
		{name: "no fallback: goodbye", iv: strict, events: []Event{Start{}, PromptDone{Seq: 1}, Timeout{Seq: 2}},
			last: []Action{Hangup{Prompts: []string{"builtin:goodbye"}}}, done: true},
		{name: "callback: a task, then the unavailable prompt", events: []Event{Start{}, PromptDone{Seq: 1}, Digit{Key: '9'}},
			last: []Action{StopPlay{}, Visit{Node: "later", Kind: config.IVRCallback}, Callback{}, Hangup{Prompts: []string{"builtin:unavailable"}}}, done: true},
		{name: "hang up without a prompt", events: []Event{Start{}, PromptDone{Seq: 1}, PromptDone{Seq: 2}, Digit{Key: '0'}},
			last: []Action{Visit{Node: "bye", Kind: config.IVRHangup}, Hangup{}}, done: true},
		{name: "nothing after the end", events: []Event{Start{}, PromptDone{Seq: 1}, PromptDone{Seq: 2}, Digit{Key: '0'}, Digit{Key: '1'}, Timeout{Seq: 3}}, last: nil, done: true},
		{name: "start twice is once", events: []Event{Start{}, Start{}}, last: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			iv := tc.iv
			if iv == nil {
				iv = tree()
			}
			var s State
			var acts []Action
			for i, ev := range tc.events {
				before := s
				next, a, err := Step(iv, s, ev)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(before, s) {
					t.Fatalf("event %d changed its input state", i)
				}
				s, acts = next, a
			}
			if !reflect.DeepEqual(acts, tc.last) {
				t.Fatalf("actions %#v\nwant    %#v", acts, tc.last)
			}
			if tc.path != nil && !reflect.DeepEqual(s.Path, tc.path) {
				t.Fatalf("path %v, want %v", s.Path, tc.path)
			}
			if s.Done() != tc.done {
				t.Fatalf("done %v", s.Done())
			}
		})
	}
	if _, _, err := Step(nil, State{}, Start{}); err == nil {
		t.Fatal("no ivr accepted")
	}
}

func TestPathIsBounded(t *testing.T) {
	iv := &config.IVR{Start: "m", Nodes: map[string]config.IVRNode{
		"m": {ID: "m", Kind: config.IVRMenu, Prompt: "p.opus", Options: map[string]string{"1": "m"}, Timeout: time.Second},
	}}
	s, _, _ := Step(iv, State{}, Start{})
	for range 100 {
		s, _, _ = Step(iv, s, Digit{Key: '1'})
	}
	if len(s.Path) != MaxPath {
		t.Fatalf("path of %d", len(s.Path))
	}
}
