package api_test

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/callgw/callgw/recording"

	"go.yaml.in/yaml/v3"

	"github.com/callgw/callgw/billing"
	"github.com/callgw/callgw/permissions"
	"github.com/callgw/callgw/signaling/agents"
	"github.com/callgw/callgw/signaling/api"
)

const specPath = "../../docs/openapi.yaml"

type spec struct {
	OpenAPI    string                               `yaml:"openapi"`
	Paths      map[string]map[string]map[string]any `yaml:"paths"`
	Components struct {
		Schemas map[string]schema `yaml:"schemas"`
	} `yaml:"components"`
}

type schema struct {
	Properties map[string]any `yaml:"properties"`
	Required   []string       `yaml:"required"`
}

func loadSpec(t *testing.T) (spec, any) {
	t.Helper()
	b, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	var s spec
	if err := yaml.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s: %v", specPath, err)
	}
	var raw any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.OpenAPI, "3.1.") {
		t.Fatalf("openapi %q, want 3.1.x", s.OpenAPI)
	}
	return s, raw
}

// routeRe matches mux.Handle("GET /api/v1/x", ...) and mux.HandleFunc(...).
var routeRe = regexp.MustCompile(`mux\.Handle(?:Func)?\("([A-Z]+) (/[^"]*)"`)

// sourceRoutes reads "METHOD /path" patterns from a Go source file.
func sourceRoutes(t *testing.T, file string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range routeRe.FindAllStringSubmatch(string(b), -1) {
		out[m[1]+" "+m[2]] = true
	}
	return out
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func specRoutes(s spec, prefix string) map[string]bool {
	out := map[string]bool{}
	for p, item := range s.Paths {
		if !strings.HasPrefix(p, prefix) {
			continue
		}
		for m := range item {
			if slices.Contains(httpMethods, m) {
				out[strings.ToUpper(m)+" "+p] = true
			}
		}
	}
	return out
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIMatchesAPIRoutes: every route api.go registers is in the spec,
// and every /api/v1 operation of the spec is registered.
func TestOpenAPIMatchesAPIRoutes(t *testing.T) {
	s, _ := loadSpec(t)
	code := sourceRoutes(t, "api.go")
	for _, f := range []string{"control.go", "routing.go"} { // routes registered by feature files
		for r := range sourceRoutes(t, f) {
			code[r] = true
		}
	}
	if len(code) < 7 {
		t.Fatalf("found only %v in api.go: has the registration style changed?", keys(code))
	}
	doc := specRoutes(s, "/api/v1/")
	for _, r := range keys(code) {
		if !doc[r] {
			t.Errorf("api.go serves %s but docs/openapi.yaml does not describe it", r)
		}
	}
	for _, r := range keys(doc) {
		if !code[r] {
			t.Errorf("docs/openapi.yaml describes %s but api.go does not serve it", r)
		}
	}
}

// TestOpenAPIDescribesAppRoutes: the non-API routes the app serves (webhooks,
// health, metrics, agent socket) are in the spec too.
func TestOpenAPIDescribesAppRoutes(t *testing.T) {
	s, _ := loadSpec(t)
	doc := specRoutes(s, "/")
	app := sourceRoutes(t, "../../internal/app/app.go")
	for _, r := range []string{"GET /ws/agent", "GET /metrics", "GET /healthz", "GET /readyz"} {
		if !app[r] {
			t.Errorf("app.go no longer registers %s: update this test and the spec", r)
		}
		if !doc[r] {
			t.Errorf("spec lacks %s", r)
		}
	}
	for _, r := range []string{"GET /webhooks/whatsapp", "POST /webhooks/whatsapp"} {
		if !doc[r] {
			t.Errorf("spec lacks %s", r)
		}
	}
}

// TestOpenAPIOperations: every operation has an id and responses, every
// authenticated /api/v1 operation documents 401, every $ref resolves.
func TestOpenAPIOperations(t *testing.T) {
	s, raw := loadSpec(t)
	ids := map[string]string{}
	for p, item := range s.Paths {
		for m, op := range item {
			if !slices.Contains(httpMethods, m) {
				continue
			}
			where := strings.ToUpper(m) + " " + p
			id, _ := op["operationId"].(string)
			if id == "" {
				t.Errorf("%s: no operationId", where)
			} else if prev, dup := ids[id]; dup {
				t.Errorf("operationId %s used by %s and %s", id, prev, where)
			}
			ids[id] = where
			resp, _ := op["responses"].(map[string]any)
			if len(resp) == 0 {
				t.Errorf("%s: no responses", where)
			}
			_, public := op["security"]
			if strings.HasPrefix(p, "/api/v1/") && !public {
				if resp["401"] == nil {
					t.Errorf("%s: authenticated but no 401", where)
				}
				if role, _ := op["x-callgw-min-role"].(string); role != string(api.RoleAgent) && role != string(api.RoleSupervisor) && role != string(api.RoleAdmin) {
					t.Errorf("%s: x-callgw-min-role %q", where, role)
				}
			}
		}
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if k == "$ref" {
					ref, _ := c.(string)
					if !resolves(raw, ref) {
						t.Errorf("%s: $ref %q does not resolve", path, ref)
					}
					continue
				}
				walk(path+"/"+k, c)
			}
		case []any:
			for _, c := range v {
				walk(path, c)
			}
		}
	}
	walk("", raw)
}

func resolves(root any, ref string) bool {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	cur := root
	for _, part := range strings.Split(rest, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[part]; !ok {
			return false
		}
	}
	return cur != nil
}

// jsonFields lists the JSON names of a struct's fields, with embedded
// structs flattened, and which of them are always present (no omitempty or
// omitzero).
func jsonFields(t reflect.Type) (all, always []string) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			a, w := jsonFields(f.Type)
			all, always = append(all, a...), append(always, w...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		all = append(all, name)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			always = append(always, name)
		}
	}
	sort.Strings(all)
	sort.Strings(always)
	return all, always
}

// TestOpenAPISchemasMatchGoTypes: the documented JSON objects have exactly
// the fields the Go types marshal, and "required" lists exactly the fields
// that are always present.
func TestOpenAPISchemasMatchGoTypes(t *testing.T) {
	s, _ := loadSpec(t)
	for name, v := range map[string]any{
		"Decision":          permissions.Decision{},
		"Entry":             billing.Entry{},
		"UsageReport":       billing.UsageReport{},
		"CountryUsage":      billing.CountryUsage{},
		"ConversationUsage": billing.ConversationUsage{},
		"Totals":            billing.Totals{},
		"CallInfo":          agents.CallInfo{},
		"AgentPresence":     api.AgentPresence{},
		"RecordingEntry":    api.RecordingEntry{},
		"RecordingStatus":   api.RecordingStatus{},
		"RecordedCall":      recording.Call{},
		"Turn":              recording.Turn{},
		"RecordingAccess":   recording.Access{},
	} {
		t.Run(name, func(t *testing.T) {
			sc, ok := s.Components.Schemas[name]
			if !ok {
				t.Fatalf("no schema %s", name)
			}
			all, always := jsonFields(reflect.TypeOf(v))
			var doc []string
			for k := range sc.Properties {
				doc = append(doc, k)
			}
			sort.Strings(doc)
			if !slices.Equal(doc, all) {
				t.Errorf("properties %v\nGo fields  %v", doc, all)
			}
			req := slices.Clone(sc.Required)
			sort.Strings(req)
			if !slices.Equal(req, always) {
				t.Errorf("required %v\nalways set %v", req, always)
			}
		})
	}
}
