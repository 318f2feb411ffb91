package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/callgw/callgw/internal/oggopus"
)

// Load reads and validates the file at path. Beyond Parse, it checks that
// every hold_audio file is a readable Ogg Opus stream with audio; a
// relative hold_audio is taken from the configuration file's directory
// (Number.HoldAudio then holds the resolved path).
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Source: path, Msg: err.Error(), Err: ErrNoFile}
	}
	c, err := Parse(b, path)
	if err != nil {
		return nil, err
	}
	var errs []error
	for i := range c.Numbers {
		n := &c.Numbers[i]
		if n.HoldAudio == "" {
			continue
		}
		if !filepath.IsAbs(n.HoldAudio) {
			n.HoldAudio = filepath.Join(filepath.Dir(path), n.HoldAudio)
		}
		if err := checkOpus(n.HoldAudio); err != nil {
			errs = append(errs, &Error{Source: path, Line: n.holdLine, Column: n.holdColumn,
				Path: fmt.Sprintf("numbers[%d].hold_audio", i), Msg: err.Error(), Err: ErrHoldAudio})
		}
	}
	errs = append(errs, resolveIVR(c, filepath.Dir(path), path)...) // ivr.go
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func checkOpus(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	pkts, err := oggopus.ReadPackets(io.LimitReader(f, 64<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(pkts) == 0 {
		return fmt.Errorf("%s: no audio packets", path)
	}
	return nil
}

var (
	idRE       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	graphIDRE  = regexp.MustCompile(`^[0-9]{1,32}$`)
	envRE      = regexp.MustCompile(`^[A-Z_][A-Z0-9_]{0,127}$`)
	tmplNameRE = regexp.MustCompile(`^[a-z0-9_]{1,512}$`)
	tmplLangRE = regexp.MustCompile(`^[a-z]{2,3}(_[A-Za-z]{2,4})?$`)
	agentIDRE  = regexp.MustCompile(`^[^\s*{}][^\s{}]{0,127}$`)
)

// The fields of the format (deploy/callgw.schema.json must list the same).
var (
	topFields    = []string{"version", "agents", "teams", "numbers"}
	teamFields   = []string{"id", "name", "agents", "strategy", "ring_seconds", "max_wait", "max_size", "overflow"}
	numberFields = []string{"phone_number_id", "waba_id", "brand", "token_env", "permission_template", "teams", "hold_audio", "ivr"}
)

// parser collects every problem of one document.
type parser struct {
	src  string
	errs []error
}

func (p *parser) fail(n *yaml.Node, path string, sentinel error, format string, args ...any) {
	e := &Error{Source: p.src, Path: path, Msg: fmt.Sprintf(format, args...), Err: sentinel}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
}

// fields walks a mapping node, reporting unknown and duplicate keys, and
// returns the value node of each known key.
func (p *parser) fields(n *yaml.Node, path string, known ...string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, ErrBadValue, "want a mapping of %s", strings.Join(known, ", "))
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case !contains(known, k.Value):
			p.fail(k, join(path, k.Value), ErrUnknownField, "unknown field %q (known: %s)", k.Value, strings.Join(known, ", "))
		case out[k.Value] != nil:
			p.fail(k, join(path, k.Value), ErrBadValue, "field given twice")
		default:
			out[k.Value] = v
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func (p *parser) str(n *yaml.Node, path string, required bool, re *regexp.Regexp, what string) string {
	if n == nil {
		return ""
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		if n.Tag == "!!null" && !required {
			return ""
		}
		p.fail(n, path, ErrBadValue, "want %s", what)
		return ""
	}
	v := strings.TrimSpace(n.Value)
	if v == "" && !required {
		return ""
	}
	if re != nil && !re.MatchString(v) {
		p.fail(n, path, ErrBadValue, "%q is not %s", v, what)
		return ""
	}
	return v
}

func (p *parser) required(m map[string]*yaml.Node, parent *yaml.Node, path, key string) *yaml.Node {
	n := m[key]
	if n == nil || (n.Kind == yaml.ScalarNode && strings.TrimSpace(n.Value) == "") || n.Tag == "!!null" {
		at := parent
		if n != nil {
			at = n
		}
		p.fail(at, join(path, key), ErrMissingField, "%s is required", key)
		return nil
	}
	return n
}

func (p *parser) seq(n *yaml.Node, path string) []*yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n, path, ErrBadValue, "want a list")
		return nil
	}
	return n.Content
}

func (p *parser) duration(n *yaml.Node, path string, def, max time.Duration, zeroOK bool) time.Duration {
	if n == nil {
		return def
	}
	if n.Kind != yaml.ScalarNode {
		p.fail(n, path, ErrBadDuration, "want a duration such as 90s or 2m")
		return def
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil && n.Value == "0" {
		d, err = 0, nil
	}
	switch {
	case err != nil:
		p.fail(n, path, ErrBadDuration, "%q is not a duration (write e.g. 90s or 2m)", n.Value)
	case d < 0 || (d == 0 && !zeroOK):
		p.fail(n, path, ErrBadDuration, "%s must be positive", n.Value)
	case d > max:
		p.fail(n, path, ErrBadDuration, "%s is above the limit %s", n.Value, max)
	default:
		return d
	}
	return def
}

// Parse validates a document; source names it in errors. The result is
// nil whenever the error is not.
func Parse(b []byte, source string) (*Config, error) {
	p := &parser{src: source}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		line := 0
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			line = yamlErrLine(err.Error())
		}
		msg := yamlLineRE.ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), "")
		if err.Error() == "EOF" {
			msg = "the file is empty"
		}
		return nil, &Error{Source: source, Line: line, Msg: msg, Err: ErrSyntax}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{Source: source, Line: extra.Line, Column: extra.Column, Msg: "one document only (found a second ---)", Err: ErrSyntax}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	c := &Config{Source: source}
	top := p.fields(root, "", topFields...)
	if v := top["version"]; v != nil && v.Value != "1" {
		p.fail(v, "version", ErrBadValue, "only version 1 is known, got %q", v.Value)
	}
	agentLine := map[AgentID]*yaml.Node{}
	for i, n := range p.seq(top["agents"], "agents") {
		path := fmt.Sprintf("agents[%d]", i)
		a := AgentID(p.str(n, path, true, agentIDRE, "an agent id (no spaces or braces, not *)"))
		if a == "" {
			continue
		}
		if agentLine[a] != nil {
			p.fail(n, path, ErrDuplicateAgent, "agent %q declared twice (first at line %d)", a, agentLine[a].Line)
			continue
		}
		agentLine[a] = n
		c.Agents = append(c.Agents, a)
	}

	teamNodes := p.seq(p.required(top, root, "", "teams"), "teams")
	teamAt := map[TeamID]int{}
	overflowNode := map[TeamID]*yaml.Node{}
	for i, n := range teamNodes {
		path := fmt.Sprintf("teams[%d]", i)
		f := p.fields(n, path, teamFields...)
		t := Team{Line: n.Line, Strategy: DefaultStrategy, RingTime: DefaultRingTime, MaxWait: DefaultMaxWait, MaxSize: DefaultMaxSize}
		t.ID = TeamID(p.str(p.required(f, n, path, "id"), join(path, "id"), true, idRE, "a team id (letters, digits, _ . -; at most 64)"))
		t.Name = p.str(f["name"], join(path, "name"), false, nil, "a name")
		if t.Name == "" {
			t.Name = string(t.ID)
		}
		seen := map[AgentID]bool{}
		for j, an := range p.seq(p.required(f, n, path, "agents"), join(path, "agents")) {
			apath := fmt.Sprintf("%s.agents[%d]", path, j)
			if an.Kind == yaml.ScalarNode && an.Value == string(AnyAgent) {
				seen[AnyAgent] = true
				t.Agents = append(t.Agents, AnyAgent)
				continue
			}
			a := AgentID(p.str(an, apath, true, agentIDRE, "an agent id (no spaces or braces) or \"*\""))
			switch {
			case a == "":
			case seen[a]:
				p.fail(an, apath, ErrDuplicateAgent, "agent %q listed twice in team %q", a, t.ID)
			case len(agentLine) > 0 && agentLine[a] == nil:
				p.fail(an, apath, ErrUnknownAgent, "agent %q is not in the agents list", a)
			default:
				seen[a] = true
				t.Agents = append(t.Agents, a)
			}
		}
		if an := f["agents"]; an != nil && an.Kind == yaml.SequenceNode && len(an.Content) == 0 {
			p.fail(an, join(path, "agents"), ErrMissingField, "team %q has no agents (write \"*\" for every agent)", t.ID)
		}
		if seen[AnyAgent] && len(t.Agents) > 1 {
			p.fail(f["agents"], join(path, "agents"), ErrBadValue, "\"*\" (every agent) must be the only member")
		}
		if sn := f["strategy"]; sn != nil {
			if s, ok := ParseStrategy(sn.Value); ok && sn.Kind == yaml.ScalarNode {
				t.Strategy = s
			} else {
				p.fail(sn, join(path, "strategy"), ErrUnknownStrategy, "unknown strategy %q (want ring_all, round_robin or longest_idle)", sn.Value)
			}
		}
		if rn := f["ring_seconds"]; rn != nil {
			s, err := strconv.Atoi(rn.Value)
			if rn.Kind != yaml.ScalarNode || err != nil || s < 1 || time.Duration(s)*time.Second > MaxRingTime {
				p.fail(rn, join(path, "ring_seconds"), ErrBadDuration, "ring_seconds must be a whole number of seconds, 1..%d, got %q", int(MaxRingTime/time.Second), rn.Value)
			} else {
				t.RingTime = time.Duration(s) * time.Second
			}
		}
		t.MaxWait = p.duration(f["max_wait"], join(path, "max_wait"), DefaultMaxWait, MaxMaxWait, true)
		if mn := f["max_size"]; mn != nil {
			s, err := strconv.Atoi(mn.Value)
			if mn.Kind != yaml.ScalarNode || err != nil || s < 0 || s > 100000 {
				p.fail(mn, join(path, "max_size"), ErrBadValue, "max_size must be a whole number 0..100000, got %q", mn.Value)
			} else {
				t.MaxSize = s
			}
		}
		if on := f["overflow"]; on != nil {
			t.Overflow = TeamID(p.str(on, join(path, "overflow"), false, idRE, "a team id"))
			overflowNode[t.ID] = on
		}
		if t.ID == "" {
			continue
		}
		if j, dup := teamAt[t.ID]; dup {
			p.fail(n, path, ErrDuplicateTeam, "team %q declared twice (first at line %d)", t.ID, c.Teams[j].Line)
			continue
		}
		teamAt[t.ID] = len(c.Teams)
		c.Teams = append(c.Teams, t)
	}
	for i, t := range c.Teams {
		if t.Overflow == "" {
			continue
		}
		path := fmt.Sprintf("teams[%d].overflow", i)
		if _, ok := teamAt[t.Overflow]; !ok {
			p.fail(overflowNode[t.ID], path, ErrUnknownTeam, "overflow team %q is not declared", t.Overflow)
			continue
		}
		// Follow the chain; coming back to t is a cycle (a chain that
		// loops elsewhere is reported at the team that starts that loop).
		visited := map[TeamID]bool{t.ID: true}
		chain := []string{string(t.ID)}
		for next := t.Overflow; next != ""; {
			chain = append(chain, string(next))
			if next == t.ID {
				p.fail(overflowNode[t.ID], path, ErrOverflowCycle, "overflow cycle %s", strings.Join(chain, " -> "))
				break
			}
			if visited[next] {
				break
			}
			visited[next] = true
			j, ok := teamAt[next]
			if !ok {
				break
			}
			next = c.Teams[j].Overflow
		}
	}

	numberAt := map[string]int{}
	numberNodes := p.seq(p.required(top, root, "", "numbers"), "numbers")
	if nn := top["numbers"]; nn != nil && nn.Kind == yaml.SequenceNode && len(numberNodes) == 0 {
		p.fail(nn, "numbers", ErrMissingField, "at least one number is required")
	}
	if tn := top["teams"]; tn != nil && tn.Kind == yaml.SequenceNode && len(teamNodes) == 0 {
		p.fail(tn, "teams", ErrMissingField, "at least one team is required")
	}
	for i, n := range numberNodes {
		path := fmt.Sprintf("numbers[%d]", i)
		f := p.fields(n, path, numberFields...)
		num := Number{Line: n.Line}
		num.PhoneNumberID = p.str(p.required(f, n, path, "phone_number_id"), join(path, "phone_number_id"), true, graphIDRE, "a Graph phone number id (digits)")
		num.WABAID = p.str(f["waba_id"], join(path, "waba_id"), false, graphIDRE, "a WhatsApp Business Account id (digits)")
		num.Brand = p.str(p.required(f, n, path, "brand"), join(path, "brand"), true, nil, "a brand name")
		num.TokenEnv = p.str(p.required(f, n, path, "token_env"), join(path, "token_env"), true, envRE, "an environment variable name (A-Z, 0-9, _)")
		if tn := f["permission_template"]; tn != nil && strings.TrimSpace(tn.Value) != "" {
			v := strings.TrimSpace(tn.Value)
			name, lang, ok := strings.Cut(v, ":")
			if tn.Kind != yaml.ScalarNode || !ok || !tmplNameRE.MatchString(name) || !tmplLangRE.MatchString(lang) {
				p.fail(tn, join(path, "permission_template"), ErrBadTemplate, "%q must be name:language, e.g. call_permission:en_US", v)
			} else {
				num.PermissionTemplate = v
			}
		}
		num.Recording = p.recording(f["recording"], join(path, "recording")) // recording.go
		num.HoldAudio = p.str(f["hold_audio"], join(path, "hold_audio"), false, nil, "a file path")
		if hn := f["hold_audio"]; hn != nil {
			num.holdLine, num.holdColumn = hn.Line, hn.Column
		}
		if num.HoldAudio != "" && !strings.HasSuffix(strings.ToLower(num.HoldAudio), ".ogg") && !strings.HasSuffix(strings.ToLower(num.HoldAudio), ".opus") {
			p.fail(f["hold_audio"], join(path, "hold_audio"), ErrBadValue, "hold audio must be an Ogg/Opus file (.ogg or .opus), got %q", num.HoldAudio)
		}
		num.IVR = p.ivr(f["ivr"], join(path, "ivr"), teamAt) // ivr.go
		if tl := f["teams"]; tl != nil && tl.Kind == yaml.SequenceNode && len(tl.Content) == 0 {
			p.fail(tl, join(path, "teams"), ErrMissingField, "number %s has no teams", num.PhoneNumberID)
		}
		tseen := map[TeamID]bool{}
		for j, tn := range p.seq(p.required(f, n, path, "teams"), join(path, "teams")) {
			tpath := fmt.Sprintf("%s.teams[%d]", path, j)
			id := TeamID(p.str(tn, tpath, true, nil, "a team id"))
			switch {
			case id == "":
			case tseen[id]:
				p.fail(tn, tpath, ErrDuplicateTeam, "team %q listed twice", id)
			case !hasTeam(teamAt, id):
				p.fail(tn, tpath, ErrUnknownTeam, "team %q is not declared", id)
			default:
				tseen[id] = true
				num.Teams = append(num.Teams, id)
			}
		}
		if num.PhoneNumberID == "" {
			continue
		}
		if j, dup := numberAt[num.PhoneNumberID]; dup {
			p.fail(f["phone_number_id"], join(path, "phone_number_id"), ErrDuplicateNumber, "number %s declared twice (first at line %d)", num.PhoneNumberID, c.Numbers[j].Line)
			continue
		}
		numberAt[num.PhoneNumberID] = len(c.Numbers)
		c.Numbers = append(c.Numbers, num)
	}

	if len(agentLine) > 0 {
		for _, a := range c.Agents {
			in := false
			for _, t := range c.Teams {
				in = in || t.Has(a)
			}
			if !in {
				p.fail(agentLine[a], "agents", ErrAgentInNoTeam, "agent %q is in no team", a)
			}
		}
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	c.index()
	return c, nil
}

func hasTeam(m map[TeamID]int, id TeamID) bool { _, ok := m[id]; return ok }

var yamlLineRE = regexp.MustCompile(`line (\d+): `)

// yamlErrLine finds the line in a yaml syntax error message.
func yamlErrLine(msg string) int {
	m := yamlLineRE.FindStringSubmatch(msg)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
