package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callgw/callgw/config"
	"github.com/callgw/callgw/internal/app"
	"go.yaml.in/yaml/v3"
)

// Files the operator kit must contain (paths relative to deploy/).
var requiredFiles = []string{
	"Dockerfile",
	"docker-compose.yml",
	".env.example",
	"prometheus/prometheus.yml",
	"prometheus/alerts.yml",
	"prometheus/alerts_test.yml",
	"grafana/provisioning/datasources/prometheus.yml",
	"grafana/provisioning/dashboards/callgw.yml",
	"grafana/dashboards/callgw.json",
	"k8s/namespace.yaml",
	"k8s/configmap.yaml",
	"k8s/secret.yaml",
	"k8s/deployment.yaml",
	"k8s/service.yaml",
	"k8s/pdb.yaml",
	"k8s/kustomization.yaml",
	"README.md",
	"../docs/deploy.md",
}

const (
	dashboardPath = "grafana/dashboards/callgw.json"
	alertsPath    = "prometheus/alerts.yml"
	composePath   = "docker-compose.yml"
	docsPath      = "../docs/deploy.md"
)

func TestRequiredFilesExist(t *testing.T) {
	for _, p := range requiredFiles {
		t.Run(p, func(t *testing.T) {
			st, err := os.Stat(p)
			if err != nil {
				t.Fatalf("required file: %v", err)
			}
			if st.Size() == 0 {
				t.Fatalf("%s is empty", p)
			}
		})
	}
}

// filesWithExt lists the files under deploy/ whose names end in one of exts.
func filesWithExt(t *testing.T, exts ...string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && slices.Contains(exts, filepath.Ext(p)) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk deploy/: %v", err)
	}
	return out
}

// decodeYAML decodes every document of a (multi-document) YAML stream.
func decodeYAML(r io.Reader) ([]any, error) {
	dec := yaml.NewDecoder(r)
	var docs []any
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", len(docs)+1, err)
		}
		if v != nil {
			docs = append(docs, v)
		}
	}
	if len(docs) == 0 {
		return nil, errors.New("no YAML document")
	}
	return docs, nil
}

func TestDecodeYAML(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		docs    int
		wantErr bool
	}{
		{name: "one document", in: "a: 1\n", docs: 1},
		{name: "two documents", in: "a: 1\n---\nb: 2\n", docs: 2},
		{name: "empty", in: "", wantErr: true},
		{name: "bad indentation", in: "a:\n  b: 1\n c: 2\n", wantErr: true},
		{name: "unclosed flow", in: "a: [1, 2\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := decodeYAML(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if len(docs) != tt.docs {
				t.Fatalf("docs = %d, want %d", len(docs), tt.docs)
			}
		})
	}
}

func TestYAMLFilesParse(t *testing.T) {
	files := filesWithExt(t, ".yml", ".yaml")
	if len(files) < 10 {
		t.Fatalf("found only %d YAML files under deploy/: %v", len(files), files)
	}
	for _, p := range files {
		t.Run(p, func(t *testing.T) {
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := decodeYAML(f); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
		})
	}
}

func TestJSONFilesParse(t *testing.T) {
	files := filesWithExt(t, ".json")
	if !slices.Contains(files, dashboardPath) {
		t.Fatalf("dashboard %s not found among %v", dashboardPath, files)
	}
	for _, p := range files {
		t.Run(p, func(t *testing.T) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
		})
	}
}

// promtoolPath finds promtool: missing is a failure under CI=true, a skip
// otherwise.
func promtoolPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool not found (CI=true): install the Debian package prometheus: %v", err)
		}
		t.Skipf("promtool not found, skipping (install the Debian package prometheus; fails under CI=true): %v", err)
	}
	return p
}

func runPromtool(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtoolPath(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestPromtool(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "check config", args: []string{"check", "config", "prometheus.yml"}},
		{name: "check rules", args: []string{"check", "rules", "alerts.yml"}},
		{name: "alert unit tests", args: []string{"test", "rules", "alerts_test.yml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runPromtool(t, "prometheus", tt.args...)
		})
	}
}

// dashboard is the part of a Grafana dashboard JSON the tests read.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int     `json:"id"`
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // collapsed rows
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// namedExpr is one PromQL expression and where it comes from.
type namedExpr struct {
	where string
	expr  string
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

// dashboardExprs returns every panel query and query variable of d.
func dashboardExprs(d dashboard) []namedExpr {
	var out []namedExpr
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out = append(out, namedExpr{where: fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID), expr: tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			out = append(out, namedExpr{where: "variable " + v.Name, expr: v.Definition})
		}
	}
	return out
}

func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Fatalf("dashboard needs a uid and a title: uid=%q title=%q", d.UID, d.Title)
	}
	ids := map[int]bool{}
	var queries int
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %d %q has no query", p.ID, p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %d %q target %s: empty expr", p.ID, p.Title, tg.RefID)
				}
				queries++
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	if queries == 0 {
		t.Fatal("dashboard has no queries")
	}
	// The dashboard must cover what operators look at.
	all := ""
	for _, e := range dashboardExprs(d) {
		all += e.expr + "\n"
	}
	for _, want := range []string{
		"callgw_calls_total", "callgw_call_setup_duration_seconds_bucket", "callgw_call_ring_duration_seconds_bucket",
		"callgw_media_packets_lost_total", "callgw_media_jitter_seconds_bucket", "callgw_media_rtt_seconds_bucket",
		"callgw_permission_requests_total", "callgw_billed_seconds_total", "callgw_billed_usd_total",
		"callgw_redis_errors_total", "callgw_agents_connected", "histogram_quantile(0.5,", "histogram_quantile(0.99,",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("dashboard never queries %s", want)
		}
	}
}

// grafanaVars replaces Grafana's template variables by values PromQL accepts.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "5m",
	"$__interval", "1m",
	"$__range", "1h",
	"$instance", ".*",
)

// TestDashboardPromQL has promtool parse every dashboard query, by writing
// them as recording rules.
func TestDashboardPromQL(t *testing.T) {
	exprs := dashboardExprs(loadDashboard(t))
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	type group struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	}
	g := group{Name: "dashboard"}
	for i, e := range exprs {
		if strings.HasPrefix(e.expr, "label_values(") {
			continue // Grafana function, not PromQL
		}
		g.Rules = append(g.Rules, rule{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: grafanaVars.Replace(e.expr)})
	}
	if len(g.Rules) == 0 {
		t.Fatal("no dashboard queries to check")
	}
	b, err := yaml.Marshal(map[string][]group{"groups": {g}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard_rules.yml"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, dir, "check", "rules", "dashboard_rules.yml")
}

// alertRules is the part of a Prometheus rule file the tests read.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadAlerts(t *testing.T) alertRules {
	t.Helper()
	var r alertRules
	readYAML(t, alertsPath, &r)
	return r
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func alertExprs(r alertRules) []namedExpr {
	var out []namedExpr
	for _, g := range r.Groups {
		for _, rl := range g.Rules {
			out = append(out, namedExpr{where: "alert " + rl.Alert + rl.Record, expr: rl.Expr})
		}
	}
	return out
}

// The alerts the brief asks for, by what they watch.
var requiredAlerts = []string{
	"CallgwCallsRingingNoAgentOnline",       // no agent online while calls ring
	"CallgwWebhookSignatureFailures",        // webhook signature failures
	"CallgwMediaPacketLoss",                 // media loss
	"CallgwRedisErrors",                     // Redis errors
	"CallgwCallsStuck",                      // calls stuck
	"CallgwLedgerWriteErrors",               // billing ledger write errors
	"CallgwNotReady",                        // instance not ready
	"CallgwGraphCallingErrorSpike",          // Graph API 138xxx spikes
	"CallgwBillingReconciliationDifference", // ledger differs from Meta's analytics
}

func TestAlertRules(t *testing.T) {
	r := loadAlerts(t)
	seen := map[string]bool{}
	for _, g := range r.Groups {
		for _, rl := range g.Rules {
			if rl.Alert == "" {
				continue
			}
			if seen[rl.Alert] {
				t.Errorf("alert %s defined twice", rl.Alert)
			}
			seen[rl.Alert] = true
			if s := rl.Labels["severity"]; !slices.Contains([]string{"critical", "warning", "info"}, s) {
				t.Errorf("alert %s: severity %q, want critical, warning or info", rl.Alert, s)
			}
			if rl.Annotations["summary"] == "" || rl.Annotations["description"] == "" {
				t.Errorf("alert %s needs summary and description annotations", rl.Alert)
			}
			if want := "docs/deploy.md#" + strings.ToLower(rl.Alert); rl.Annotations["runbook"] != want {
				t.Errorf("alert %s: runbook %q, want %q", rl.Alert, rl.Annotations["runbook"], want)
			}
		}
	}
	for _, a := range requiredAlerts {
		if !seen[a] {
			t.Errorf("required alert %s missing from %s", a, alertsPath)
		}
	}
}

var metricNameRE = regexp.MustCompile(`\bcallgw_[a-zA-Z0-9_]+`)

// metricNames returns the callgw_* series names an expression refers to,
// as written (suffixes are resolved by missingMetrics).
func metricNames(expr string) []string {
	names := metricNameRE.FindAllString(expr, -1)
	slices.Sort(names)
	return slices.Compact(names)
}

// missingMetrics returns the referenced names that are not registered. A
// histogram's _bucket, _sum and _count series count as its base name.
func missingMetrics(referenced []string, registered map[string]bool) []string {
	var missing []string
	for _, n := range referenced {
		if registered[n] {
			continue
		}
		base := n
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(n, suf); ok {
				base = b
				break
			}
		}
		if !registered[base] {
			missing = append(missing, n)
		}
	}
	return missing
}

func TestMetricNameHelpers(t *testing.T) {
	registered := map[string]bool{"callgw_calls_total": true, "callgw_call_setup_duration_seconds": true, "callgw_ready": true}
	tests := []struct {
		name    string
		expr    string
		names   []string
		missing []string
	}{
		{name: "counter rate", expr: `sum by (direction) (rate(callgw_calls_total{instance=~".*"}[5m]))`,
			names: []string{"callgw_calls_total"}},
		{name: "histogram bucket", expr: `histogram_quantile(0.99, sum by (le) (rate(callgw_call_setup_duration_seconds_bucket[5m])))`,
			names: []string{"callgw_call_setup_duration_seconds_bucket"}},
		{name: "histogram sum over count", expr: `rate(callgw_call_setup_duration_seconds_sum[5m]) / rate(callgw_call_setup_duration_seconds_count[5m])`,
			names: []string{"callgw_call_setup_duration_seconds_count", "callgw_call_setup_duration_seconds_sum"}},
		{name: "unknown series", expr: `callgw_ready == 0 and callgw_not_registered > 0`,
			names: []string{"callgw_not_registered", "callgw_ready"}, missing: []string{"callgw_not_registered"}},
		{name: "unknown histogram", expr: `rate(callgw_nope_seconds_bucket[5m])`,
			names: []string{"callgw_nope_seconds_bucket"}, missing: []string{"callgw_nope_seconds_bucket"}},
		{name: "job label is not a metric", expr: `up{job="callgw"} == 0`},
		{name: "duplicates once", expr: `callgw_ready + callgw_ready`, names: []string{"callgw_ready"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := metricNames(tt.expr)
			if !slices.Equal(got, tt.names) {
				t.Fatalf("metricNames = %v, want %v", got, tt.names)
			}
			if m := missingMetrics(got, registered); !slices.Equal(m, tt.missing) {
				t.Fatalf("missingMetrics = %v, want %v", m, tt.missing)
			}
		})
	}
}

// registeredMetrics builds ./cmd/callgw and returns what `callgw metrics`
// prints: every metric family name the binary registers.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	if _, err := os.Stat("../cmd/callgw"); err != nil {
		t.Fatalf("the callgw binary's package ../cmd/callgw is needed to list registered metrics: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "callgw")
	build := exec.Command("go", "build", "-o", bin, "../cmd/callgw")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ../cmd/callgw: %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "metrics")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("callgw metrics: %v\n%s", err, stderr.Bytes())
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			names[line] = true
		}
	}
	if len(names) == 0 {
		t.Fatal("callgw metrics printed nothing")
	}
	return names
}

func TestReferencedMetricsAreRegistered(t *testing.T) {
	exprs := append(dashboardExprs(loadDashboard(t)), alertExprs(loadAlerts(t))...)
	var referenced []string
	where := map[string][]string{}
	for _, e := range exprs {
		for _, n := range metricNames(e.expr) {
			referenced = append(referenced, n)
			where[n] = append(where[n], e.where)
		}
	}
	slices.Sort(referenced)
	referenced = slices.Compact(referenced)
	if len(referenced) < 20 {
		t.Fatalf("only %d callgw_* series referenced by the dashboard and alerts: %v", len(referenced), referenced)
	}
	registered := registeredMetrics(t)
	for _, n := range missingMetrics(referenced, registered) {
		t.Errorf("%s is used but `callgw metrics` does not list it; used by: %s", n, strings.Join(slices.Compact(where[n]), "; "))
	}
}

// compose is the part of docker-compose.yml the tests read.
type compose struct {
	Services map[string]struct {
		Image           string            `yaml:"image"`
		Command         []string          `yaml:"command"`
		Environment     map[string]string `yaml:"environment"`
		Ports           []string          `yaml:"ports"`
		StopGracePeriod string            `yaml:"stop_grace_period"`
		Volumes         []string          `yaml:"volumes"`
	} `yaml:"services"`
}

func TestCompose(t *testing.T) {
	var c compose
	readYAML(t, composePath, &c)

	var callgw []string
	for name, s := range c.Services {
		if strings.HasPrefix(s.Image, "callgw:") {
			callgw = append(callgw, name)
		}
	}
	slices.Sort(callgw)
	if len(callgw) != 2 {
		t.Fatalf("want two callgw services, got %v", callgw)
	}
	udpPorts := map[string]string{}
	for _, name := range callgw {
		t.Run(name, func(t *testing.T) {
			s := c.Services[name]
			env := s.Environment
			for _, k := range []string{"CALLGW_REDIS_URL", "CALLGW_PUBLIC_IP", "CALLGW_INSTANCE_ID", "CALLGW_UDP_PORT", "CALLGW_DRAIN_TIMEOUT", "CALLGW_APP_SECRET"} {
				if env[k] == "" {
					t.Errorf("%s not set", k)
				}
			}
			port := env["CALLGW_UDP_PORT"]
			if other, dup := udpPorts[port]; dup {
				t.Errorf("UDP port %s also used by %s", port, other)
			}
			udpPorts[port] = name
			// The host port must equal the container port: the ICE candidate
			// announces CALLGW_PUBLIC_IP:CALLGW_UDP_PORT.
			if want := port + ":" + port + "/udp"; !slices.Contains(s.Ports, want) {
				t.Errorf("ports %v lack %q", s.Ports, want)
			}
			if !slices.Contains(s.Ports, "8080") && !slices.ContainsFunc(s.Ports, func(p string) bool { return strings.HasSuffix(p, ":8080/tcp") || strings.HasSuffix(p, ":8080") }) {
				t.Errorf("ports %v do not publish HTTP 8080", s.Ports)
			}
			drain, err := time.ParseDuration(env["CALLGW_DRAIN_TIMEOUT"])
			if err != nil {
				t.Fatalf("CALLGW_DRAIN_TIMEOUT: %v", err)
			}
			grace, err := time.ParseDuration(s.StopGracePeriod)
			if err != nil {
				t.Fatalf("stop_grace_period: %v", err)
			}
			if grace <= drain {
				t.Errorf("stop_grace_period %v must exceed CALLGW_DRAIN_TIMEOUT %v", grace, drain)
			}
		})
	}
	if ids := []string{c.Services[callgw[0]].Environment["CALLGW_INSTANCE_ID"], c.Services[callgw[1]].Environment["CALLGW_INSTANCE_ID"]}; ids[0] == ids[1] {
		t.Errorf("both callgw services use CALLGW_INSTANCE_ID %q", ids[0])
	}

	t.Run("redis AOF", func(t *testing.T) {
		redis, ok := c.Services["redis"]
		if !ok {
			t.Fatal("no redis service")
		}
		args := strings.Join(redis.Command, " ")
		if !strings.Contains(args, "--appendonly yes") {
			t.Errorf("redis command %q lacks --appendonly yes", args)
		}
		if !strings.Contains(args, "--appendfsync always") && !strings.Contains(args, "--appendfsync everysec") {
			t.Errorf("redis command %q lacks an --appendfsync policy", args)
		}
		if !slices.ContainsFunc(redis.Volumes, func(v string) bool { return strings.HasSuffix(v, ":/data") }) {
			t.Errorf("redis /data is not on a volume: %v", redis.Volumes)
		}
	})

	t.Run("prometheus scrapes both instances", func(t *testing.T) {
		var p struct {
			RuleFiles     []string `yaml:"rule_files"`
			ScrapeConfigs []struct {
				JobName       string `yaml:"job_name"`
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
			} `yaml:"scrape_configs"`
		}
		readYAML(t, "prometheus/prometheus.yml", &p)
		var targets []string
		for _, sc := range p.ScrapeConfigs {
			if sc.JobName == "callgw" {
				for _, st := range sc.StaticConfigs {
					targets = append(targets, st.Targets...)
				}
			}
		}
		slices.Sort(targets)
		want := []string{callgw[0] + ":8080", callgw[1] + ":8080"}
		if !slices.Equal(targets, want) {
			t.Errorf("callgw scrape targets %v, want %v", targets, want)
		}
		if !slices.Contains(p.RuleFiles, "alerts.yml") {
			t.Errorf("rule_files %v lack alerts.yml", p.RuleFiles)
		}
	})
}

// k8sObject is the union of the Kubernetes fields the tests read.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Replicas int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		MaxUnavailable any `yaml:"maxUnavailable"`
		MinAvailable   any `yaml:"minAvailable"`
		Ports          []struct {
			Name       string `yaml:"name"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds int  `yaml:"terminationGracePeriodSeconds"`
				HostNetwork                   bool `yaml:"hostNetwork"`
				SecurityContext               struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
				} `yaml:"securityContext"`
				Containers []k8sContainer `yaml:"containers"`
				Volumes    []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sContainer struct {
	Name    string `yaml:"name"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name string `yaml:"name"`
	} `yaml:"env"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
	Ports          []k8sPort `yaml:"ports"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Lifecycle      struct {
		PreStop struct {
			Sleep *struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
}

type k8sPort struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
	HostPort      int    `yaml:"hostPort"`
	Protocol      string `yaml:"protocol"`
}

type k8sProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

func loadK8s(t *testing.T) map[string]k8sObject {
	t.Helper()
	objs := map[string]k8sObject{}
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range files {
		if filepath.Base(p) == "kustomization.yaml" {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(f)
		for {
			var o k8sObject
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				t.Fatalf("%s: %v", p, err)
			}
			key := o.Kind + "/" + o.Metadata.Name
			if _, dup := objs[key]; dup {
				t.Errorf("%s defined twice", key)
			}
			objs[key] = o
		}
		f.Close()
	}
	return objs
}

func TestKubernetes(t *testing.T) {
	objs := loadK8s(t)
	dep, ok := objs["Deployment/callgw"]
	if !ok {
		t.Fatalf("no Deployment/callgw among %v", keys(objs))
	}
	cm, ok := objs["ConfigMap/callgw-config"]
	if !ok {
		t.Fatal("no ConfigMap/callgw-config")
	}
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	podLabels := dep.Spec.Template.Metadata.Labels

	t.Run("routing file mounted", func(t *testing.T) {
		// CALLGW_CONFIG names the file of the routing ConfigMap, mounted as a
		// whole directory (a subPath mount never sees updates: no reload).
		path := cm.Data["CALLGW_CONFIG"]
		if path == "" {
			t.Fatal("ConfigMap callgw-config sets no CALLGW_CONFIG")
		}
		dir, file := filepath.Dir(path), filepath.Base(path)
		var vol string
		for _, m := range c.VolumeMounts {
			if m.MountPath == dir {
				if m.SubPath != "" || !m.ReadOnly {
					t.Errorf("mount %s: subPath %q readOnly %v (want a read-only directory mount)", dir, m.SubPath, m.ReadOnly)
				}
				vol = m.Name
			}
		}
		if vol == "" {
			t.Fatalf("no volume mounted at %s (CALLGW_CONFIG %s)", dir, path)
		}
		var cmName string
		for _, v := range pod.Volumes {
			if v.Name == vol && v.ConfigMap != nil {
				cmName = v.ConfigMap.Name
			}
		}
		if cmName == "" {
			t.Fatalf("volume %s is not a ConfigMap", vol)
		}
		data, ok := objs["ConfigMap/"+cmName].Data[file]
		if !ok {
			t.Fatalf("ConfigMap %s has no key %s", cmName, file)
		}
		if _, err := config.Parse([]byte(data), "ConfigMap/"+cmName); err != nil {
			t.Fatalf("ConfigMap %s %s is refused: %v", cmName, file, err)
		}
	})
	t.Run("probes", func(t *testing.T) {
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
			t.Errorf("readiness probe must GET /readyz: %+v", c.ReadinessProbe)
		}
		if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
			t.Errorf("liveness probe must GET /healthz: %+v", c.LivenessProbe)
		}
	})
	t.Run("grace period covers preStop and drain", func(t *testing.T) {
		drain, err := time.ParseDuration(cm.Data["CALLGW_DRAIN_TIMEOUT"])
		if err != nil {
			t.Fatalf("ConfigMap CALLGW_DRAIN_TIMEOUT: %v", err)
		}
		if c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds <= 0 {
			t.Fatal("container needs a preStop sleep")
		}
		preStop := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second
		if grace <= preStop+drain {
			t.Errorf("terminationGracePeriodSeconds %v must exceed preStop %v + drain %v", grace, preStop, drain)
		}
	})
	t.Run("UDP media port", func(t *testing.T) {
		want, err := strconv.Atoi(cm.Data["CALLGW_UDP_PORT"])
		if err != nil {
			t.Fatalf("ConfigMap CALLGW_UDP_PORT: %v", err)
		}
		var found bool
		for _, p := range c.Ports {
			if p.Protocol != "UDP" {
				continue
			}
			found = true
			if p.ContainerPort != want {
				t.Errorf("UDP containerPort %d, CALLGW_UDP_PORT %d", p.ContainerPort, want)
			}
			if !pod.HostNetwork && p.HostPort != p.ContainerPort {
				t.Errorf("UDP hostPort %d must equal containerPort %d (the ICE candidate announces the port)", p.HostPort, p.ContainerPort)
			}
		}
		if !found {
			t.Error("no UDP port declared")
		}
		var publicIP bool
		for _, e := range c.Env {
			publicIP = publicIP || e.Name == "CALLGW_PUBLIC_IP"
		}
		if !publicIP && cm.Data["CALLGW_PUBLIC_IP"] == "" {
			t.Error("CALLGW_PUBLIC_IP is set nowhere")
		}
	})
	t.Run("resources and security", func(t *testing.T) {
		if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
			t.Errorf("resources: %+v", c.Resources)
		}
		if !pod.SecurityContext.RunAsNonRoot {
			t.Error("pod must run as non-root")
		}
	})
	t.Run("config references", func(t *testing.T) {
		for _, ef := range c.EnvFrom {
			switch {
			case ef.ConfigMapRef != nil:
				if _, ok := objs["ConfigMap/"+ef.ConfigMapRef.Name]; !ok {
					t.Errorf("envFrom ConfigMap %s not defined", ef.ConfigMapRef.Name)
				}
			case ef.SecretRef != nil:
				if _, ok := objs["Secret/"+ef.SecretRef.Name]; !ok {
					t.Errorf("envFrom Secret %s not defined", ef.SecretRef.Name)
				}
			}
		}
	})
	t.Run("selectors", func(t *testing.T) {
		if !labelsMatch(dep.Spec.Selector.MatchLabels, podLabels) {
			t.Errorf("Deployment selector %v does not match pod labels %v", dep.Spec.Selector.MatchLabels, podLabels)
		}
		svc, ok := objs["Service/callgw"]
		if !ok {
			t.Fatal("no Service/callgw")
		}
		// A Service selector is a plain label map under spec.selector.
		var raw struct {
			Spec struct {
				Selector map[string]string `yaml:"selector"`
			} `yaml:"spec"`
		}
		readYAML(t, "k8s/service.yaml", &raw)
		if !labelsMatch(raw.Spec.Selector, podLabels) {
			t.Errorf("Service selector %v does not match pod labels %v", raw.Spec.Selector, podLabels)
		}
		for _, p := range svc.Spec.Ports {
			name, _ := p.TargetPort.(string)
			if name != "" && !slices.ContainsFunc(c.Ports, func(cp k8sPort) bool { return cp.Name == name }) {
				t.Errorf("Service targetPort %q names no container port", name)
			}
		}
		pdb, ok := objs["PodDisruptionBudget/callgw"]
		if !ok {
			t.Fatal("no PodDisruptionBudget/callgw")
		}
		if !labelsMatch(pdb.Spec.Selector.MatchLabels, podLabels) {
			t.Errorf("PDB selector %v does not match pod labels %v", pdb.Spec.Selector.MatchLabels, podLabels)
		}
		if pdb.Spec.MaxUnavailable == nil && pdb.Spec.MinAvailable == nil {
			t.Error("PDB sets neither maxUnavailable nor minAvailable")
		}
	})
	t.Run("kustomization lists every manifest", func(t *testing.T) {
		var k struct {
			Resources []string `yaml:"resources"`
		}
		readYAML(t, "k8s/kustomization.yaml", &k)
		files, _ := filepath.Glob("k8s/*.yaml")
		for _, f := range files {
			if b := filepath.Base(f); b != "kustomization.yaml" && !slices.Contains(k.Resources, b) {
				t.Errorf("kustomization.yaml does not list %s", b)
			}
		}
		for _, r := range k.Resources {
			if _, err := os.Stat(filepath.Join("k8s", r)); err != nil {
				t.Errorf("kustomization resource: %v", err)
			}
		}
	})
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// labelsMatch reports whether every selector label is on the pod.
func labelsMatch(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestLabelsMatch(t *testing.T) {
	pod := map[string]string{"app": "callgw", "tier": "gw"}
	tests := []struct {
		name string
		sel  map[string]string
		want bool
	}{
		{name: "subset", sel: map[string]string{"app": "callgw"}, want: true},
		{name: "equal", sel: pod, want: true},
		{name: "other value", sel: map[string]string{"app": "redis"}},
		{name: "extra key", sel: map[string]string{"app": "callgw", "x": "y"}},
		{name: "empty selector selects nothing here", sel: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := labelsMatch(tt.sel, pod); got != tt.want {
				t.Fatalf("labelsMatch = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	tests := []struct {
		name string
		re   string
	}{
		{name: "go 1.26 builder stage", re: `(?m)^FROM golang:1\.26\S* AS build$`},
		{name: "static build", re: `CGO_ENABLED=0`},
		{name: "trimpath and stripped", re: `go build -trimpath -ldflags="-s -w" -o \S+ \./cmd/callgw`},
		{name: "distroless or scratch final stage", re: `(?m)^FROM (gcr\.io/distroless/static\S*|scratch)$`},
		{name: "binary copied from builder", re: `(?m)^COPY --from=build `},
		{name: "non-root user", re: `(?m)^USER (65532|nonroot)`},
		{name: "HTTP port", re: `(?m)^EXPOSE 8080(/tcp)?$`},
		{name: "UDP media port", re: `(?m)^EXPOSE \d+/udp$`},
		{name: "healthcheck explained", re: `(?i)no HEALTHCHECK`},
		{name: "exec-form entrypoint", re: `(?m)^ENTRYPOINT \["/usr/local/bin/callgw"\]$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !regexp.MustCompile(tt.re).MatchString(df) {
				t.Errorf("Dockerfile does not match %s", tt.re)
			}
		})
	}
	if regexp.MustCompile(`(?m)^USER (root|0)\b`).MatchString(df) {
		t.Error("Dockerfile switches to root")
	}
}

var envNameRE = regexp.MustCompile(`\bCALLGW_[A-Z0-9_]+\b`)

// TestDocsCoverKit checks docs/deploy.md explains every setting the kit uses
// and has a section for every alert.
func TestDocsCoverKit(t *testing.T) {
	doc, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	docs := string(doc)
	used := map[string][]string{}
	for _, p := range []string{composePath, ".env.example", "k8s/configmap.yaml", "k8s/secret.yaml", "k8s/deployment.yaml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range envNameRE.FindAllString(string(b), -1) {
			used[n] = append(used[n], p)
		}
	}
	for _, n := range keys(used) {
		if !strings.Contains(docs, n) {
			t.Errorf("%s (used in %s) is not described in %s", n, slices.Compact(used[n]), docsPath)
		}
	}
	headings := map[string]bool{}
	for _, line := range strings.Split(docs, "\n") {
		if strings.HasPrefix(line, "#") {
			headings[strings.TrimSpace(strings.TrimLeft(line, "#"))] = true
		}
	}
	for _, e := range alertExprs(loadAlerts(t)) {
		name := strings.TrimPrefix(e.where, "alert ")
		if !headings[name] {
			t.Errorf("%s has no section (a heading named %q) in %s", name, name, docsPath)
		}
	}
	for _, want := range []string{"What was validated here", "docker build", "CALLGW_PUBLIC_IP", "coturn", "appendfsync", "hash tag"} {
		if !strings.Contains(docs, want) {
			t.Errorf("%s does not mention %q", docsPath, want)
		}
	}
}

// composeVarRE matches ${NAME}, ${NAME:-default} and ${NAME:?message}.
var composeVarRE = regexp.MustCompile(`\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}`)

// interpolate resolves compose variables from vars the way docker compose
// does for the forms used in docker-compose.yml.
func interpolate(s string, vars map[string]string) (string, error) {
	var err error
	out := composeVarRE.ReplaceAllStringFunc(s, func(m string) string {
		g := composeVarRE.FindStringSubmatch(m)
		v := vars[g[1]]
		switch {
		case v != "":
			return v
		case g[2] == "-":
			return g[3]
		case g[2] == "?":
			err = errors.Join(err, fmt.Errorf("%s: %s", g[1], g[3]))
		}
		return ""
	})
	return out, err
}

func TestInterpolate(t *testing.T) {
	vars := map[string]string{"A": "1", "E": ""}
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "set", in: "x${A}y", want: "x1y"},
		{name: "default used", in: "${B:-two}", want: "two"},
		{name: "default ignored when set", in: "${A:-two}", want: "1"},
		{name: "empty counts as unset", in: "${E:-d}", want: "d"},
		{name: "required missing", in: "${B:?set B}", wantErr: true},
		{name: "required present", in: "${A:?set A}", want: "1"},
		{name: "json default", in: "${J:-[]}", want: "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := interpolate(tt.in, vars)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// dotEnv reads a KEY=value file (comments and blank lines skipped).
func dotEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s:%d: not KEY=value: %q", path, i+1, line)
		}
		vars[k] = v
	}
	return vars
}

// TestKitConfigAccepted loads the environment each kit gives callgw through
// the binary's own configuration loader: the settings must be accepted, must
// not fall back to the demo mode, and must mean what the kit intends.
func TestKitConfigAccepted(t *testing.T) {
	type want struct {
		udpPort  int
		drain    time.Duration
		publicIP string
		instance string
	}
	type kit struct {
		name string
		env  map[string]string
		want want
	}
	var kits []kit

	// compose: .env.example, with the secrets an operator must fill in set
	// to well-formed values.
	vars := dotEnv(t, ".env.example")
	for k, v := range vars {
		if v == "" && k != "CALLGW_API_KEYS" {
			vars[k] = "filled-in-by-operator-" + strings.ToLower(k)
		}
	}
	var c compose
	readYAML(t, composePath, &c)
	for _, name := range []string{"callgw-1", "callgw-2"} {
		env := map[string]string{}
		for k, v := range c.Services[name].Environment {
			r, err := interpolate(v, vars)
			if err != nil {
				t.Fatalf("compose %s %s: %v", name, k, err)
			}
			env[k] = r
		}
		port, _ := strconv.Atoi(strings.TrimPrefix(name, "callgw-"))
		kits = append(kits, kit{name: "compose " + name, env: env,
			want: want{udpPort: 40000 + port, drain: 30 * time.Second, publicIP: vars["CALLGW_PUBLIC_IP"], instance: name}})
	}

	// Kubernetes: ConfigMap + Secret + the values the downward API fills in.
	objs := loadK8s(t)
	env := map[string]string{"CALLGW_PUBLIC_IP": "198.51.100.20", "CALLGW_INSTANCE_ID": "callgw-7d9f-abcde"}
	for k, v := range objs["ConfigMap/callgw-config"].Data {
		env[k] = v
	}
	for k, v := range objs["Secret/callgw-secrets"].StringData {
		env[k] = v
	}
	kits = append(kits, kit{name: "kubernetes", env: env,
		want: want{udpPort: 40000, drain: 30 * time.Second, publicIP: "198.51.100.20", instance: "callgw-7d9f-abcde"}})

	for _, k := range kits {
		t.Run(k.name, func(t *testing.T) {
			var stderr bytes.Buffer
			cfg, err := app.LoadConfig(nil, func(name string) string { return k.env[name] }, &stderr)
			if err != nil {
				t.Fatalf("callgw refuses the configuration: %v\n%s", err, stderr.Bytes())
			}
			if cfg.Demo {
				t.Error("configuration falls back to demo mode (built-in simulator)")
			}
			if cfg.MediaLoopback {
				t.Error("media bound to loopback: unreachable from WhatsApp")
			}
			if cfg.UDPPort != k.want.udpPort {
				t.Errorf("UDP port %d, want %d", cfg.UDPPort, k.want.udpPort)
			}
			if cfg.DrainTimeout != k.want.drain {
				t.Errorf("drain timeout %v, want %v", cfg.DrainTimeout, k.want.drain)
			}
			if !slices.Equal(cfg.PublicIPs, []string{k.want.publicIP}) {
				t.Errorf("public IPs %v, want [%s]", cfg.PublicIPs, k.want.publicIP)
			}
			if cfg.InstanceID != k.want.instance {
				t.Errorf("instance id %q, want %q", cfg.InstanceID, k.want.instance)
			}
			if cfg.RedisURL == "" && len(cfg.RedisAddrs) == 0 {
				t.Error("no Redis configured: state would not be durable")
			}
		})
	}
}
