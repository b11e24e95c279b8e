"""The dashboard in a real browser against the real operator, cluster and PostgreSQL.

nimbus-operator serves the built dashboard (frontend/dist, built by hack/setup)
on its API port; frontend/e2e/dashboard.e2e.mjs drives Debian's Chromium
through playwright-core: log in, create tenants and workloads, watch one
become Ready through the event stream, scale it, see placements, usage and an
invoice with its CSV, survive an operator restart with the live banner, and
log in as a tenant that must not see the other. Screenshots of every page go
to test-artifacts/dashboard/ on every run.
"""
import os
import pathlib
import shutil
import subprocess
import threading

import pytest

from conftest import API_ADMIN_PASSWORD, ROOT

FRONTEND = os.path.join(ROOT, "frontend")
DIST = os.path.join(FRONTEND, "dist")
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = os.path.join(ROOT, "test-artifacts", "dashboard")


def test_dashboard_end_to_end(api_operator, tmp_path):
    assert os.path.isfile(os.path.join(DIST, "index.html")), "frontend/dist is not built: run hack/setup"
    assert os.path.isdir(os.path.join(FRONTEND, "node_modules", "playwright-core")), "run hack/setup (npm ci in frontend/)"
    assert os.access(CHROMIUM, os.X_OK), "Chromium is missing: run hack/setup (Debian package chromium)"
    node = shutil.which("node")
    assert node, "node is missing: run hack/setup"

    op, base = api_operator(f"--dashboard-dir={DIST}", "--billing-period=5s", "--controllers=tenant,workload,scheduler,billing")

    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    done = tmp_path / "restarted"
    env = dict(os.environ, NIMBUS_URL=base, NIMBUS_ADMIN_PASSWORD=API_ADMIN_PASSWORD, E2E_ARTIFACTS=ARTIFACTS,
               E2E_RESTART="1", E2E_RESTART_DONE=str(done), CHROMIUM=CHROMIUM)
    proc = subprocess.Popen([node, os.path.join(FRONTEND, "e2e", "dashboard.e2e.mjs")], cwd=FRONTEND, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # The whole run takes about a minute; never let a hung browser hold the suite.
    killer = threading.Timer(600, proc.kill)
    killer.start()
    out = []
    try:
        for line in proc.stdout:
            out.append(line)
            print(line, end="")
            if line.strip() == "E2E: restart-operator":
                # A graceful stop closes the websocket; the dashboard must say
                # so, reconnect to the new process and reload what it shows.
                op.stop()
                op.start()
                done.write_text("yes")
        proc.wait()
    finally:
        killer.cancel()
    text = "".join(out)
    assert proc.returncode == 0, f"the browser test failed (screenshots in {ARTIFACTS}):\n{text[-6000:]}"
    assert " 0 failed" in text
    shots = {p.name for p in pathlib.Path(ARTIFACTS).glob("*.png")}
    for page in ("login", "overview", "tenants", "workloads", "scheduler", "billing", "tenant-overview", "overview-narrow"):
        assert f"{page}.png" in shots, f"no screenshot of {page}: {sorted(shots)}"
