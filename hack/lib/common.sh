# Shared shell helpers for hack/ scripts. Source it; it sets no options of its own.
# shellcheck shell=bash

NIMBUS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NIMBUS_CACHE=${NIMBUS_CACHE:-$HOME/.cache/nimbus}
# shellcheck source=../versions.env
. "$NIMBUS_ROOT/hack/versions.env"

log()  { printf '%s [%s] %s\n' "$(date +%H:%M:%S)" "${NIMBUS_LOG_TAG:-hack}" "$*" >&2; }
die()  { printf '%s [%s] error: %s\n' "$(date +%H:%M:%S)" "${NIMBUS_LOG_TAG:-hack}" "$*" >&2; exit 1; }

# Go builds run offline from the module proxy only, with caches outside the clone
# so a fresh clone on a warm machine rebuilds nothing.
go_env() {
	export GOCACHE="$NIMBUS_CACHE/go-build"
	export GOMODCACHE="$NIMBUS_CACHE/go-mod"
	export GOFLAGS="-modcacherw -mod=mod"
	export GOTOOLCHAIN=local
	export CGO_ENABLED=0
}

# Directory holding the binaries of one component at its pinned version.
tool_dir() { echo "$NIMBUS_CACHE/$1-$2"; }

# Absolute path of an upstream binary, built by hack/setup.
tool_bin() {
	case "$1" in
	kube-apiserver|kube-controller-manager|kube-scheduler|kubectl) echo "$(tool_dir kube "$KUBE_VERSION")/$1" ;;
	etcd) echo "$(tool_dir etcd "$ETCD_VERSION")/etcd" ;;
	kwok) echo "$(tool_dir kwok "$KWOK_VERSION")/kwok" ;;
	metrics-server) echo "$(tool_dir metrics-server "$METRICS_SERVER_VERSION")/metrics-server" ;;
	helm) echo "$(tool_dir helm "$HELM_VERSION")/helm" ;;
	*) die "unknown tool $1" ;;
	esac
}

# True when 127.0.0.1:$1 accepts TCP connections.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
