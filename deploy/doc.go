// Package deploy owns callgw's operator kit: the container image
// (Dockerfile), the docker compose stack (two callgw instances, Redis with
// AOF, Prometheus, Grafana), the Prometheus scrape config and alert rules,
// the Grafana provisioning and dashboard, and the Kubernetes manifests.
//
// It holds no Go code beyond its tests: deploy_test.go parses every YAML and
// JSON file here, runs promtool over the Prometheus config and rules (and the
// rule unit tests), checks the dashboard's PromQL, checks that every callgw_*
// series the dashboard and alerts use is registered by the binary
// (`callgw metrics`), and cross-checks compose and Kubernetes settings (UDP
// ports, probes, drain timeout versus grace period). See docs/deploy.md.
package deploy
