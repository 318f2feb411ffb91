package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// IVR menus (numbers[].ivr): a small tree of nodes run after callgw
// answers the call and before the queue.
//
//	ivr:
//	  start: main
//	  nodes:
//	    main:
//	      menu: {prompt: menu.opus, options: {"1": sales, "2": support}, timeout: 5s, retries: 2, invalid: builtin:menu_example, fallback: bye}
//	    sales:   {team: sales}
//	    support: {team: support}
//	    later:   {callback: {prompt: builtin:unavailable}}
//	    bye:     {hangup: {prompt: builtin:goodbye}}
//	    hello:   {play: {prompt: welcome.opus, next: main}}
//
// A prompt is "builtin:<name>" (media's built-in prompts) or an Ogg/Opus
// file (.ogg, .opus; relative to the configuration file).

// Errors of the IVR section (wrapped in *Error with the line).
var (
	// ErrUnknownNode: a start, next, option or fallback names no node.
	ErrUnknownNode = errors.New("config: unknown ivr node")
	// ErrIVRLoop: play nodes lead back to themselves with no menu between.
	ErrIVRLoop = errors.New("config: ivr loop")
	// ErrIVRPrompt: an IVR prompt file cannot be read or is not Ogg Opus.
	ErrIVRPrompt = errors.New("config: bad ivr prompt")
)

// IVRKind is what a node does.
type IVRKind uint8

const (
	IVRUnknown  IVRKind = iota
	IVRPlay             // play a prompt, then go to Next
	IVRMenu             // play a prompt and read one key; options lead to nodes
	IVRTeam             // route the caller to a team (its queue)
	IVRCallback         // leave a callback task (no voicemail), play a prompt, hang up
	IVRHangup           // play a prompt (optional) and hang up
)

var ivrKindNames = [...]string{"unknown", "play", "menu", "team", "callback", "hangup"}

func (k IVRKind) String() string {
	if int(k) < len(ivrKindNames) {
		return ivrKindNames[k]
	}
	return "unknown"
}

// IVR defaults and limits.
const (
	DefaultMenuTimeout = 5 * time.Second
	DefaultMenuRetries = 2
	MaxMenuTimeout     = time.Minute
	MaxMenuRetries     = 9
	MaxIVRNodes        = 64
	BuiltinPrefix      = "builtin:"
)

// IVR is one number's menu tree.
type IVR struct {
	Start string
	Nodes map[string]IVRNode
	Line  int
}

// IVRNode is one node of the tree.
type IVRNode struct {
	ID       string
	Kind     IVRKind
	Prompt   string            // "builtin:<name>" or a file path (resolved by Load)
	Next     string            // play
	Options  map[string]string // menu: key ("0".."9", "*", "#") -> node
	Timeout  time.Duration     // menu: wait for a key after the prompt
	Retries  int               // menu: replays after a wrong key or none
	Invalid  string            // menu: prompt after a wrong key or none ("" = the menu prompt again)
	Fallback string            // menu: node once the retries are spent ("" = hang up)
	Team     TeamID            // team
	Line     int

	promptLine, promptColumn   int
	invalidLine, invalidColumn int
}

// Prompts lists the node's prompts (file or builtin), in use order.
func (n IVRNode) Prompts() []string {
	var out []string
	for _, p := range []string{n.Prompt, n.Invalid} {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// IsBuiltin reports whether prompt names a built-in prompt, and which.
func IsBuiltin(prompt string) (string, bool) {
	return strings.CutPrefix(prompt, BuiltinPrefix)
}

var (
	ivrNodeRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	builtinRE   = regexp.MustCompile(`^builtin:[a-z_]{1,32}$`)
	ivrFields   = []string{"start", "nodes"}
	kindFields  = []string{"play", "menu", "team", "callback", "hangup"}
	playFields  = []string{"prompt", "next"}
	menuFields  = []string{"prompt", "options", "timeout", "retries", "invalid", "fallback"}
	endFields   = []string{"prompt"}
	menuKeyRE   = regexp.MustCompile(`^[0-9*#]$`)
	ivrKindNode = map[string]IVRKind{"play": IVRPlay, "menu": IVRMenu, "team": IVRTeam, "callback": IVRCallback, "hangup": IVRHangup}
)

// ivr parses numbers[i].ivr (nil when absent).
func (p *parser) ivr(n *yaml.Node, path string, teamAt map[TeamID]int) *IVR {
	if n == nil || n.Tag == "!!null" {
		return nil
	}
	f := p.fields(n, path, ivrFields...)
	iv := &IVR{Nodes: map[string]IVRNode{}, Line: n.Line}
	startNode := p.required(f, n, path, "start")
	iv.Start = p.str(startNode, join(path, "start"), true, ivrNodeRE, "a node id")
	nodes := p.required(f, n, path, "nodes")
	if nodes == nil {
		return nil
	}
	if nodes.Kind != yaml.MappingNode {
		p.fail(nodes, join(path, "nodes"), ErrBadValue, "want a mapping of node id to node")
		return nil
	}
	if len(nodes.Content)/2 > MaxIVRNodes {
		p.fail(nodes, join(path, "nodes"), ErrBadValue, "at most %d nodes", MaxIVRNodes)
	}
	refs := []struct {
		node *yaml.Node
		path string
		to   string
	}{}
	ref := func(v *yaml.Node, path string) string {
		id := p.str(v, path, true, ivrNodeRE, "a node id")
		if id != "" {
			refs = append(refs, struct {
				node *yaml.Node
				path string
				to   string
			}{v, path, id})
		}
		return id
	}
	keyNode := map[string]*yaml.Node{}
	for i := 0; i+1 < len(nodes.Content); i += 2 {
		k, v := nodes.Content[i], nodes.Content[i+1]
		keyNode[k.Value] = k
		npath := join(join(path, "nodes"), k.Value)
		if !ivrNodeRE.MatchString(k.Value) {
			p.fail(k, npath, ErrBadValue, "%q is not a node id (letters, digits, _ . -; at most 64)", k.Value)
			continue
		}
		if _, dup := iv.Nodes[k.Value]; dup {
			p.fail(k, npath, ErrBadValue, "node %q given twice", k.Value)
			continue
		}
		kf := p.fields(v, npath, kindFields...)
		if len(kf) != 1 {
			if len(kf) > 1 {
				p.fail(v, npath, ErrBadValue, "a node is one of play, menu, team, callback, hangup (found %d)", len(kf))
			} else if v.Kind == yaml.MappingNode {
				p.fail(v, npath, ErrMissingField, "a node needs one of play, menu, team, callback, hangup")
			}
			continue
		}
		nd := IVRNode{ID: k.Value, Line: k.Line}
		for kind, body := range kf {
			nd.Kind = ivrKindNode[kind]
			bpath := join(npath, kind)
			switch nd.Kind {
			case IVRTeam:
				nd.Team = TeamID(p.str(body, bpath, true, idRE, "a team id"))
				if nd.Team != "" && !hasTeam(teamAt, nd.Team) {
					p.fail(body, bpath, ErrUnknownTeam, "team %q is not declared", nd.Team)
				}
			case IVRPlay:
				bf := p.fields(body, bpath, playFields...)
				p.ivrPrompt(&nd, p.required(bf, body, bpath, "prompt"), join(bpath, "prompt"), false)
				if nn := p.required(bf, body, bpath, "next"); nn != nil {
					nd.Next = ref(nn, join(bpath, "next"))
				}
			case IVRMenu:
				bf := p.fields(body, bpath, menuFields...)
				p.ivrPrompt(&nd, p.required(bf, body, bpath, "prompt"), join(bpath, "prompt"), false)
				nd.Timeout = p.duration(bf["timeout"], join(bpath, "timeout"), DefaultMenuTimeout, MaxMenuTimeout, false)
				nd.Retries = DefaultMenuRetries
				if rn := bf["retries"]; rn != nil {
					r, err := strconv.Atoi(rn.Value)
					if rn.Kind != yaml.ScalarNode || err != nil || r < 0 || r > MaxMenuRetries {
						p.fail(rn, join(bpath, "retries"), ErrBadValue, "retries must be a whole number 0..%d, got %q", MaxMenuRetries, rn.Value)
					} else {
						nd.Retries = r
					}
				}
				if in := bf["invalid"]; in != nil {
					p.ivrPrompt(&nd, in, join(bpath, "invalid"), true)
				}
				if fn := bf["fallback"]; fn != nil {
					nd.Fallback = ref(fn, join(bpath, "fallback"))
				}
				nd.Options = map[string]string{}
				on := p.required(bf, body, bpath, "options")
				if on != nil && on.Kind != yaml.MappingNode {
					p.fail(on, join(bpath, "options"), ErrBadValue, "want a mapping of key (0-9, *, #) to node")
				} else if on != nil {
					for j := 0; j+1 < len(on.Content); j += 2 {
						dk, dv := on.Content[j], on.Content[j+1]
						opath := join(join(bpath, "options"), dk.Value)
						switch {
						case !menuKeyRE.MatchString(dk.Value):
							p.fail(dk, opath, ErrBadValue, "%q is not a key (0-9, *, #)", dk.Value)
						case nd.Options[dk.Value] != "":
							p.fail(dk, opath, ErrBadValue, "key %q given twice", dk.Value)
						default:
							nd.Options[dk.Value] = ref(dv, opath)
						}
					}
					if len(on.Content) == 0 {
						p.fail(on, join(bpath, "options"), ErrMissingField, "a menu needs at least one option")
					}
				}
			case IVRCallback, IVRHangup:
				if body.Kind == yaml.ScalarNode && (body.Tag == "!!null" || body.Value == "") {
					break // {hangup: } or {hangup: {}}
				}
				bf := p.fields(body, bpath, endFields...)
				if pn := bf["prompt"]; pn != nil {
					p.ivrPrompt(&nd, pn, join(bpath, "prompt"), false)
				}
			}
		}
		iv.Nodes[nd.ID] = nd
	}
	for _, r := range refs {
		if _, ok := iv.Nodes[r.to]; !ok {
			p.fail(r.node, r.path, ErrUnknownNode, "node %q is not declared", r.to)
		}
	}
	if iv.Start != "" {
		if _, ok := iv.Nodes[iv.Start]; !ok {
			p.fail(startNode, join(path, "start"), ErrUnknownNode, "start node %q is not declared", iv.Start)
		}
	}
	// A loop of play nodes only would never end.
	ids := make([]string, 0, len(iv.Nodes))
	for id := range iv.Nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		seen := map[string]bool{}
		chain := []string{}
		for cur := id; ; {
			nd, ok := iv.Nodes[cur]
			if !ok || nd.Kind != IVRPlay {
				break
			}
			if seen[cur] {
				if cur == id {
					p.fail(keyNode[id], join(join(path, "nodes"), id), ErrIVRLoop, "play nodes loop with no menu: %s", strings.Join(append(chain, cur), " -> "))
				}
				break
			}
			seen[cur] = true
			chain = append(chain, cur)
			cur = nd.Next
		}
	}
	return iv
}

// ivrPrompt reads a prompt reference into nd (Prompt, or Invalid).
func (p *parser) ivrPrompt(nd *IVRNode, n *yaml.Node, path string, invalid bool) {
	if n == nil {
		return
	}
	v := p.str(n, path, true, nil, "a prompt: builtin:<name> or an .ogg/.opus file")
	if v == "" {
		return
	}
	lower := strings.ToLower(v)
	switch {
	case strings.HasPrefix(v, BuiltinPrefix):
		if !builtinRE.MatchString(v) {
			p.fail(n, path, ErrBadValue, "%q is not builtin:<name>", v)
			return
		}
	case !strings.HasSuffix(lower, ".ogg") && !strings.HasSuffix(lower, ".opus"):
		p.fail(n, path, ErrBadValue, "a prompt must be builtin:<name> or an Ogg/Opus file (.ogg or .opus), got %q", v)
		return
	}
	if invalid {
		nd.Invalid, nd.invalidLine, nd.invalidColumn = v, n.Line, n.Column
	} else {
		nd.Prompt, nd.promptLine, nd.promptColumn = v, n.Line, n.Column
	}
}

// resolveIVR makes the IVR's file prompts absolute (relative to dir) and
// checks each is Ogg Opus with audio (Load).
func resolveIVR(c *Config, dir, src string) []error {
	var errs []error
	for i := range c.Numbers {
		iv := c.Numbers[i].IVR
		if iv == nil {
			continue
		}
		ids := make([]string, 0, len(iv.Nodes))
		for id := range iv.Nodes {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			nd := iv.Nodes[id]
			fix := func(pr *string, line, col int, field string) {
				if *pr == "" {
					return
				}
				if _, ok := IsBuiltin(*pr); ok {
					return
				}
				if !filepath.IsAbs(*pr) {
					*pr = filepath.Join(dir, *pr)
				}
				if err := checkOpus(*pr); err != nil {
					errs = append(errs, &Error{Source: src, Line: line, Column: col,
						Path: fmt.Sprintf("numbers[%d].ivr.nodes.%s.%s", i, id, field), Msg: err.Error(), Err: ErrIVRPrompt})
				}
			}
			fix(&nd.Prompt, nd.promptLine, nd.promptColumn, "prompt")
			fix(&nd.Invalid, nd.invalidLine, nd.invalidColumn, "invalid")
			iv.Nodes[id] = nd
		}
	}
	return errs
}
