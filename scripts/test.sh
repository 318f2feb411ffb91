#!/usr/bin/env bash
# Runs every test of callgw on a fresh Debian machine: installs what the
# tests need (redis-server, chromium, libopus-dev for decoding audio in
# tests, promtool; coturn, nftables and iproute2 for the network tests in
# internal/netlab, which need root and skip without it; versitygw as the
# S3-compatible server of the storage tests), then go vet and go test -race
# over every package. Tests start their own redis-server processes, headless
# Chromium, versitygw and turnserver (inside namespaces they create; never
# the system coturn service).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists opus 2>/dev/null || missing+=(libopus-dev)
command -v turnserver >/dev/null 2>&1 || missing+=(coturn)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The S3-compatible server the storage tests run against (a Go module: built
# from the module proxy into GOBIN; a no-op when already there).
VERSITYGW_VERSION=v1.8.0
gobin="$(go env GOBIN)"; [ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
if [ ! -x "$gobin/versitygw" ] && ! command -v versitygw >/dev/null 2>&1; then
  echo "installing: versitygw $VERSITYGW_VERSION (go install, a few minutes)"
  go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" ||
    echo "warning: versitygw could not be built: the S3 storage tests will say they skip"
fi
# The Debian packages may start services; the tests use their own instances.
if command -v redis-cli >/dev/null 2>&1 && redis-cli -p 6379 ping >/dev/null 2>&1; then
  echo "note: a redis-server is already running on 6379; tests use their own ports"
fi

echo "go vet ./..."
go vet ./...
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
# internal/app (the end-to-end and browser tests: real-time audio, Chromium)
# runs after the other packages, alone: next to the media package's
# real-time tests on a 2-core runner its audio checks starve for CPU.
echo "go test -race ./... (internal/app last, alone)"
others=$(go list ./... | grep -v '/internal/app$')
go test -race -count=1 -timeout 20m "$@" $others
go test -race -count=1 -timeout 20m "$@" ./internal/app/
