"""The container image, without a container engine: no Docker daemon runs here.

The Dockerfile's build stages run hack/image-build (the operator) and
hack/image-build --dashboard (the dashboard), and so does this test, on the
host (Debian 12, the image's release); the runtime stage's package
list is checked against the libraries the built binary links, hadolint
checks the Dockerfile, and compose.yaml is checked against what
nimbus-operator reads.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT

DOCKERFILE = os.path.join(ROOT, "Dockerfile")
# In the runtime stage for a reason other than a NEEDED library.
RUNTIME_EXTRAS = {"ca-certificates"}  # TLS to an external PostgreSQL (sslmode verify-full)


def stages():
    """The Dockerfile as a list of stages, each the list of its instructions (continuations joined)."""
    with open(DOCKERFILE) as f:
        text = re.sub(r"\\\n", " ", f.read())
    out = []
    for ln in text.splitlines():
        ln = ln.strip()
        if not ln or ln.startswith("#"):
            continue
        if ln.upper().startswith("FROM "):
            out.append([])
        out[-1].append(ln)
    return out


def apt_packages(stage):
    pkgs = []
    for ins in stage:
        m = re.search(r"apt-get install -y --no-install-recommends ([^&]+)", ins)
        if m:
            pkgs += m.group(1).split()
    return pkgs


def test_hadolint():
    hadolint = shutil.which("hadolint") or os.path.join(os.path.dirname(sys.executable), "hadolint")
    if not os.access(hadolint, os.X_OK):
        pytest.skip("hadolint is not installed (hack/requirements-test.txt brings it)")
    p = subprocess.run([hadolint, DOCKERFILE], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


def test_dockerfile_shape():
    dashboard, build, runtime = stages()
    assert re.match(r"FROM node:\d+-bookworm-slim AS dashboard$", dashboard[0]), dashboard[0]
    assert "RUN hack/image-build --dashboard /out" in dashboard
    assert build[0].startswith("FROM debian:bookworm-slim AS build")
    assert runtime[0] == "FROM debian:bookworm-slim"
    assert "RUN hack/image-build /out" in build
    assert any(i.startswith("USER ") and not i.startswith("USER root") and not i.startswith("USER 0") for i in runtime)
    copies = [i for i in runtime if i.startswith("COPY")]
    assert all(re.match(r"COPY --from=(build|dashboard) /out/rootfs/", i) for i in copies), "only the builds' output goes in"
    # The dashboard lands where the chart's --dashboard-dir points, and the image's own command serves it.
    with open(os.path.join(ROOT, "charts", "nimbus", "values.yaml")) as f:
        chart_dir = yaml.safe_load(f)["dashboard"]["dir"]
    assert f"COPY --from=dashboard /out/rootfs{chart_dir} {chart_dir}" in copies, copies
    assert f'"--dashboard-dir={chart_dir}"' in next(i for i in runtime if i.startswith("CMD"))
    # Every Debian package hack/setup installs for the C build is in the build stage.
    with open(os.path.join(ROOT, "hack", "setup")) as f:
        setup = f.read()
    setup_pkgs = set(re.search(r"DEB_PACKAGES=\(([^)]*)\)", setup).group(1).split())
    c_build = {p for p in setup_pkgs if p.endswith("-dev") or p in {"build-essential", "cmake", "ninja-build", "pkg-config"}}
    assert c_build <= set(apt_packages(build)), c_build - set(apt_packages(build))


def test_build_script_and_runtime_libraries(tmp_path):
    """hack/image-build as the Dockerfile runs it; the runtime stage holds exactly the libraries it links."""
    p = subprocess.run([os.path.join(ROOT, "hack", "image-build"), str(tmp_path)], capture_output=True, text=True,
                       timeout=600, env={**os.environ, "NIMBUS_BUILD_JOBS": "2"})
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    binary = tmp_path / "rootfs" / "usr" / "local" / "bin" / "nimbus-operator"
    assert os.access(binary, os.X_OK)
    help_text = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=10).stdout
    assert "--leader-elect" in help_text

    needed = re.findall(r"NEEDED\s+(\S+)", subprocess.run(["objdump", "-p", str(binary)], capture_output=True,
                                                            text=True, check=True).stdout)
    ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    paths = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
    packages = set()
    for lib in needed:
        real = os.path.realpath(paths[lib])
        owner = None
        for candidate in (real, real.replace("/usr/lib/", "/lib/", 1)):  # merged /usr: dpkg knows either
            q = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
            if q.returncode == 0:
                owner = q.stdout.split(":")[0]
                break
        assert owner, f"no Debian package owns {real} ({lib})"
        packages.add(owner)
    packages.discard("libc6")  # in every Debian image
    runtime = set(apt_packages(stages()[2]))
    assert packages <= runtime, f"the runtime stage lacks {packages - runtime} (the binary links them)"
    extra = runtime - packages - RUNTIME_EXTRAS
    assert not extra, f"the runtime stage installs {extra}, which the binary does not link"


def test_dashboard_build_script(tmp_path):
    """hack/image-build --dashboard as the Dockerfile's dashboard stage runs it: npm ci from the lockfile, a build."""
    p = subprocess.run([os.path.join(ROOT, "hack", "image-build"), "--dashboard", str(tmp_path)], capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    out = tmp_path / "rootfs" / "usr" / "share" / "nimbus" / "dashboard"
    index = (out / "index.html").read_text()
    assets = [a.name for a in (out / "assets").iterdir()]
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets), assets
    refs = re.findall(r'(?:src|href)="/(assets/[^"]+)"', index)
    assert refs and all((out / r).is_file() for r in refs), refs  # every script and style index.html loads is there
    assert not (out / "node_modules").exists() and not (out / ".nimbus-stamp").exists()


def test_compose_file():
    with open(os.path.join(ROOT, "compose.yaml")) as f:
        compose = yaml.safe_load(f)
    svc = compose["services"]
    op, pg = svc["nimbus-operator"], svc["postgres"]
    assert op["build"] == "." and os.path.exists(DOCKERFILE)
    assert op["depends_on"]["postgres"]["condition"] == "service_healthy" and pg["healthcheck"]
    # Only loopback: the published database port and the operator's listeners.
    assert all(p.startswith("127.0.0.1:") for p in pg["ports"])
    assert all(a.split("=", 1)[1].startswith("127.0.0.1:") for a in op["command"] if "bind-address" in a)
    # The seed's variables, under the names nimbus-operator reads (config.h).
    assert {"DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD", "DB_SSLMODE", "JWT_SECRET", "KUBECONFIG"} == \
        set(op["environment"])
    with open(os.path.join(ROOT, "operator", "config.c")) as f:
        config = f.read()
    for name in op["environment"]:
        assert f'"{name}"' in config, f"nimbus-operator does not read {name}"
    assert op["read_only"] is True and op["cap_drop"] == ["ALL"]
