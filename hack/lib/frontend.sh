# The dashboard (frontend/): its npm dependencies from the committed lockfile,
# and its build into frontend/dist, which nimbus-operator serves with
# --dashboard-dir. Sourced by hack/setup. Each step is skipped while a stamp
# (a hash of what it depends on) matches, so a warm setup costs nothing.
# shellcheck shell=bash

frontend_hash() { # files or directories...
	find "$@" -type f ! -name '*.tsbuildinfo' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
}

install_frontend() {
	local fe=$NIMBUS_ROOT/frontend v
	command -v node >/dev/null && command -v npm >/dev/null ||
		die "node and npm are missing: install Node.js 20.19 or newer (Debian package nodejs from the NodeSource repository)"
	v=$(node -p 'process.versions.node')
	node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' ||
		die "Node.js $v is too old for the dashboard's build (Vite 7 needs 20.19 or newer)"

	local deps; deps=$(frontend_hash "$fe/package-lock.json")
	if [ "$(cat "$fe/node_modules/.nimbus-stamp" 2>/dev/null)" != "$deps" ]; then
		log "installing the dashboard's npm packages (npm ci)"
		(cd "$fe" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in frontend/ failed; is the npm registry reachable?"
		echo "$deps" >"$fe/node_modules/.nimbus-stamp"
	fi

	local src; src=$(frontend_hash "$fe/src" "$fe/index.html" "$fe/package-lock.json" "$fe/package.json" "$fe/vite.config.ts" "$fe/tsconfig.json")
	if [ "$(cat "$fe/dist/.nimbus-stamp" 2>/dev/null)" != "$src" ]; then
		log "building the dashboard into frontend/dist"
		(cd "$fe" && npm run --silent build >"$NIMBUS_CACHE/frontend-build.log" 2>&1) ||
			{ tail -n 30 "$NIMBUS_CACHE/frontend-build.log" >&2; die "the dashboard's build failed; see $NIMBUS_CACHE/frontend-build.log"; }
		echo "$src" >"$fe/dist/.nimbus-stamp"
	fi
}
