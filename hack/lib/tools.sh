# Builds the upstream components from their Go modules into the binary cache.
# shellcheck shell=bash
# Each component has a helper module under hack/tools/<component>/ whose go.mod
# pins the version and whose go.sum pins every dependency. A stamp beside the
# binaries records a hash of both files: a warm cache with a matching stamp
# rebuilds nothing.

tools_stamp() { cat "$NIMBUS_ROOT/hack/tools/$1/go.mod" "$NIMBUS_ROOT/hack/tools/$1/go.sum" | sha256sum | cut -c1-16; }

# build_tool COMPONENT MODULE VERSION LDFLAGS OUTNAME=PACKAGE...
build_tool() {
	local comp=$1 mod=$2 ver=$3 ldflags=$4; shift 4
	local dir stamp; dir=$(tool_dir "$comp" "$ver"); stamp=$(tools_stamp "$comp")
	grep -Eq "^(require)?[[:space:]]*$mod $ver( // indirect)?$" "$NIMBUS_ROOT/hack/tools/$comp/go.mod" ||
		die "hack/tools/$comp/go.mod does not require $ver from hack/versions.env; update both together"
	if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$stamp" ]; then
		return 0
	fi
	log "building $comp $ver into $dir (cold: several minutes; log $dir.log)"
	mkdir -p "$dir"
	go_env
	local spec start=$SECONDS
	for spec in "$@"; do
		(cd "$NIMBUS_ROOT/hack/tools/$comp" &&
			go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "$ldflags" -o "$dir/${spec%%=*}" "${spec#*=}") >>"$dir.log" 2>&1 ||
			die "building $comp (${spec#*=}) failed; see $dir.log"
	done
	echo "$stamp" >"$dir/.stamp"
	log "built $comp $ver in $((SECONDS - start))s"
}

kube_ldflags() {
	local v=${KUBE_VERSION#v} major minor pkg flags="-s -w"
	major=${v%%.*}; minor=${v#*.}; minor=${minor%%.*}
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		flags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
		flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
	done
	echo "$flags"
}

build_all_tools() {
	build_tool etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "-s -w" etcd=go.etcd.io/etcd/server/v3
	build_tool kube k8s.io/kubernetes "$KUBE_VERSION" "$(kube_ldflags)" \
		kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
		kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
		kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
		kubectl=k8s.io/kubernetes/cmd/kubectl
	build_tool kwok sigs.k8s.io/kwok "$KWOK_VERSION" "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" kwok=sigs.k8s.io/kwok/cmd/kwok
	build_tool metrics-server sigs.k8s.io/metrics-server "$METRICS_SERVER_VERSION" "-s -w" metrics-server=sigs.k8s.io/metrics-server/cmd/metrics-server
	build_tool helm helm.sh/helm/v3 "$HELM_VERSION" "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" helm=helm.sh/helm/v3/cmd/helm
}
