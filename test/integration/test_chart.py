"""charts/nimbus: lint, schema, rendering, a server-side dry run, and a real install.

The chart's own pods cannot run here (kwok fakes them: no container runtime),
so after `helm install` two nimbus-operator processes run on the host exactly
as the chart's pods would: the Deployment's args and env (secrets and the
downward API resolved), no kubeconfig, the in-cluster configuration from a
token of the chart's ServiceAccount and the cluster CA laid out like
/var/run/secrets/kubernetes.io/serviceaccount (NIMBUS_SERVICE_ACCOUNT_DIR).
Through a whole demo (tenant, ComputeRequest, scheduling, autoscaling,
billing, leader takeover, tenant deletion) no request may be refused, and
only the Lease holder may act.

prometheus-operator's ServiceMonitor and PrometheusRule CRDs come from its Go
module (example/prometheus-operator-crd/), downloaded into the Go module cache
like the cluster's own components; nothing is fetched from elsewhere.
"""
import base64
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from datetime import datetime

import pytest
import yaml

from conftest import ROOT, kubectl, kubectl_json, wait_until

CHART = os.path.join(ROOT, "charts", "nimbus")
ALL_VALUES = os.path.join(CHART, "ci", "all-features-values.yaml")
DASHBOARD = os.path.join(CHART, "files", "grafana-dashboard.json")
RELEASE, NS = "nimbus", "nimbus-system"
SA = f"system:serviceaccount:{NS}:{RELEASE}"

PROM_OPERATOR = "github.com/prometheus-operator/prometheus-operator"
PROM_OPERATOR_VERSION = "v0.85.0"
PROM_OPERATOR_SUM = "h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s="  # as go.sum would pin it

LEASE_S, RENEW_S, RETRY_S = 4, 3, 0.5
# Expiry by the follower's clock (counted from when it last saw a renewal, up
# to one jittered retry period after the renewal), its next attempt, and
# slack for a loaded 2-core machine.
TAKEOVER_MAX_S = LEASE_S + 2 * RETRY_S * 1.2 + 2.0

# What the chart must render, by values.
DEFAULT_KINDS = {"ServiceAccount", "Secret", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Lease",
                 "Service", "Deployment", "PodDisruptionBudget"}
ALL_KINDS = (DEFAULT_KINDS - {"Secret"}) | {"Ingress", "ServiceMonitor", "PrometheusRule", "ConfigMap"}


def run(*cmd, check=True, timeout=120, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    return p


def hack_shell(script):
    """Run bash with hack/lib/common.sh sourced (tool paths, go_env)."""
    return run("bash", "-c", f". {ROOT}/hack/lib/common.sh; {script}").stdout.strip()


@pytest.fixture(scope="module")
def helm():
    path = hack_shell("tool_bin helm")
    assert os.access(path, os.X_OK), f"{path} is missing: run hack/setup"

    def h(*args, check=True, timeout=180):
        p = run(path, *args, check=check, timeout=timeout)
        # Helm notes the crds/ symlink to the repository's CRD on every load.
        p.stderr = "\n".join(ln for ln in p.stderr.splitlines() if "found symbolic link in path" not in ln)
        return p
    return h


def render(helm, *args):
    out = helm("template", RELEASE, CHART, "-n", NS, *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs, kind):
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects rendered"
    return found[0]


def metric_names(expr):
    return set(re.findall(r"\b(nimbus_[a-z0-9_]+)", expr))


def dashboard_queries():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    out = []
    for p in dash["panels"]:
        if p["type"] == "row":
            continue
        assert p.get("targets"), f"panel {p['title']!r} has no query"
        for t in p["targets"]:
            assert metric_names(t["expr"]), f"panel {p['title']!r}: {t['expr']!r} names no nimbus metric"
            out.append((p["title"], t["expr"]))
    return out


def alert_rules(helm):
    docs = render(helm, "--api-versions", "monitoring.coreos.com/v1", "--set", "metrics.prometheusRule.enabled=true")
    return by_kind(docs, "PrometheusRule")["spec"]


# ---- static: lint, schema, rendering ------------------------------------------------


def test_lint_strict_default_and_all_features(helm):
    for extra in ([], ["-f", ALL_VALUES]):
        p = helm("lint", "--strict", CHART, *extra)
        assert "1 chart(s) linted, 0 chart(s) failed" in p.stdout, p.stdout
        assert "[WARNING]" not in p.stdout and "[ERROR]" not in p.stdout, p.stdout


@pytest.mark.parametrize("setting, where", [
    ("replicaCount=two", "/replicaCount"),
    ("operator.workers=0", "/operator/workers"),
    ("database.port=70000", "/database/port"),
    ("database.port=abc", "/database/port"),
    ("database.sslmode=on", "/database/sslmode"),
    ("leaderElection.enabled=false", "/leaderElection/enabled"),  # 2 replicas without election: refused
    ("leaderElection.leaseDuration=15", "/leaderElection/leaseDuration"),
    ("operator.controllers={tenant,bogus}", "/operator/controllers/1"),
    ("operator.prices.cpuCoreHour=cheap", "/operator/prices/cpuCoreHour"),
    ("operator.currency=usd", "/operator/currency"),
    ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
    ("metrics.serviceMonitor.enabled=yes", "/metrics/serviceMonitor/enabled"),
    ("ingress.enabled=1", "/ingress/enabled"),
    ("resources=small", "/resources"),
    ("auth.jwtSecret=short", "/auth/jwtSecret"),
    ("auth.adminPassword=hunter2", "/auth/adminPassword"),
    ("replicaCont=2", "additional properties 'replicaCont'"),
])
def test_schema_rejects_wrong_values(helm, setting, where):
    p = helm("template", RELEASE, CHART, "--set", setting, check=False)
    assert p.returncode != 0, f"--set {setting} was accepted"
    assert "values don't meet the specifications of the schema" in p.stderr and where in p.stderr, p.stderr


def test_dashboard_flag(helm):
    """The chart serves the image's dashboard unless dashboard.enabled=false."""
    def args(*extra):
        return by_kind(render(helm, *extra), "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--dashboard-dir=/usr/share/nimbus/dashboard" in args()
    assert not [a for a in args("--set", "dashboard.enabled=false") if a.startswith("--dashboard-dir")]
    assert "--dashboard-dir=/opt/ui" in args("--set", "dashboard.dir=/opt/ui")
    p = helm("template", RELEASE, CHART, "--set", "dashboard.dir=relative", check=False)
    assert p.returncode != 0 and "/dashboard/dir" in p.stderr, p.stderr


def test_schema_accepts_one_replica_without_election(helm):
    docs = render(helm, "--set", "replicaCount=1", "--set", "leaderElection.enabled=false")
    kinds = {d["kind"] for d in docs}
    assert "Role" not in kinds and "Lease" not in kinds and "PodDisruptionBudget" not in kinds, kinds
    args = by_kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [a for a in args if a.startswith("--leader-elect")], args


def test_render_default_and_all_features(helm):
    default = render(helm)
    assert {d["kind"] for d in default} == DEFAULT_KINDS
    # ServiceMonitor and PrometheusRule need prometheus-operator's API in the cluster.
    no_api = render(helm, "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true")
    assert {d["kind"] for d in no_api} == DEFAULT_KINDS
    everything = render(helm, "-f", ALL_VALUES, "--api-versions", "monitoring.coreos.com/v1")
    assert {d["kind"] for d in everything} == ALL_KINDS

    for docs in (default, everything):
        dep = by_kind(docs, "Deployment")
        pod = dep["spec"]["template"]["spec"]
        c = pod["containers"][0]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["privileged"] is False
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["resources"]["requests"] and c["resources"]["limits"]
        env = {e["name"]: e for e in c["env"]}
        assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
        assert "KUBECONFIG" not in env  # in-cluster: the service account
        assert {"DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_SSLMODE", "DB_PASSWORD", "JWT_SECRET",
                "NIMBUS_ADMIN_PASSWORD"} <= env.keys()
        assert "--leader-elect" in c["args"] and "--leader-election-namespace=$(POD_NAMESPACE)" in c["args"]
        for rule in by_kind(docs, "ClusterRole")["rules"] + by_kind(docs, "Role")["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"wildcard in {rule}"

    c = by_kind(everything, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert c["image"].startswith("registry.example.com/nimbus/nimbus-operator@sha256:")
    env = {e["name"]: e for e in c["env"]}
    assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "nimbus-db", "key": "pgpassword"}
    assert env["JWT_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "nimbus-api", "key": "jwt"}
    assert env["NIMBUS_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "nimbus-api", "key": "admin"}
    assert "--leader-elect-lease-duration=8s" in c["args"]
    cm = by_kind(everything, "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    json.loads(cm["data"]["nimbus-operator.json"])

    # The CRD is the repository's, in the chart's crds/ directory.
    with_crds = helm("template", RELEASE, CHART, "--include-crds").stdout
    crd = [d for d in yaml.safe_load_all(with_crds) if d and d["kind"] == "CustomResourceDefinition"]
    with open(os.path.join(ROOT, "crds", "computerequest.yaml")) as f:
        assert crd == [yaml.safe_load(f)]


def test_prometheus_rules_pass_promtool(helm, tmp_path):
    spec = alert_rules(helm)
    names = {r["alert"] for g in spec["groups"] for r in g["rules"]}
    assert {"NimbusReconcileErrors", "NimbusWatchRelistStorm", "NimbusBillingBufferFilling",
            "NimbusSchedulerPendingPods"} <= names, names
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(spec))
    p = run("promtool", "check", "rules", str(rules))
    assert "SUCCESS" in p.stdout + p.stderr, p.stdout + p.stderr

    # Alerts fire as meant on synthetic series (annotations left out: the
    # unit test compares them whole).
    bare = {"groups": [{**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
                       for g in spec["groups"]]}
    (tmp_path / "bare-rules.yaml").write_text(yaml.safe_dump(bare))
    sel = 'job="nimbus", namespace="nimbus-system"'
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump({
        "rule_files": ["bare-rules.yaml"], "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": f'nimbus_billing_buffer_rows{{{sel}, pod="a"}}', "values": "60000x10"},
                {"series": f'nimbus_scheduler_pending_pods{{{sel}, pod="a"}}', "values": "3x15"},
                {"series": f'nimbus_informer_relists_total{{{sel}, pod="a", kind="Pod"}}', "values": "0+2x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "6m", "alertname": "NimbusBillingBufferFilling", "exp_alerts": [
                    {"exp_labels": {"severity": "warning", "namespace": "nimbus-system", "pod": "a"}}]},
                {"eval_time": "5m", "alertname": "NimbusSchedulerPendingPods", "exp_alerts": []},
                {"eval_time": "11m", "alertname": "NimbusSchedulerPendingPods", "exp_alerts": [
                    {"exp_labels": {"severity": "warning", "namespace": "nimbus-system", "pod": "a"}}]},
                {"eval_time": "16m", "alertname": "NimbusWatchRelistStorm", "exp_alerts": [
                    {"exp_labels": {"severity": "warning", "namespace": "nimbus-system", "pod": "a", "kind": "Pod"}}]},
            ],
        }],
    }))
    p = run("promtool", "test", "rules", "tests.yaml", cwd=tmp_path, check=False)
    assert p.returncode == 0, p.stdout + p.stderr


def test_dashboard_json_is_valid():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    assert dash["uid"] and dash["title"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    assert len(dashboard_queries()) >= 10


# ---- against the apiserver ------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus_operator_crds():
    """ServiceMonitor and PrometheusRule CRDs from prometheus-operator's Go module, removed afterwards."""
    info = json.loads(hack_shell(f"go_env; go mod download -json {PROM_OPERATOR}@{PROM_OPERATOR_VERSION}"))
    assert "Error" not in info, info
    assert info["Sum"] == PROM_OPERATOR_SUM, f"module checksum {info['Sum']} is not the pinned one"
    crd_dir = os.path.join(info["Dir"], "example", "prometheus-operator-crd")
    files = [os.path.join(crd_dir, f"monitoring.coreos.com_{k}.yaml") for k in ("servicemonitors", "prometheusrules")]
    args = [a for f in files for a in ("-f", f)]
    kubectl("apply", "--server-side", *args)

    def established():
        crds = [kubectl_json("get", "crd", f"{k}.monitoring.coreos.com") for k in ("servicemonitors", "prometheusrules")]
        return all(any(c["type"] == "Established" and c["status"] == "True"
                       for c in crd.get("status", {}).get("conditions") or []) for crd in crds)
    wait_until(established, 60, what="the prometheus-operator CRDs to be established")
    yield
    kubectl("delete", "--ignore-not-found", "--wait=false", *args, check=False)


@pytest.fixture(scope="module")
def crd():
    kubectl("apply", "-f", os.path.join(ROOT, "crds", "computerequest.yaml"))
    kubectl("wait", "--for=condition=Established", "crd/computerequests.nimbus.io", "--timeout=60s")


@pytest.fixture(scope="module")
def release_namespace():
    """nimbus-system with the restricted Pod Security Standard enforced: the chart's pods must pass it.

    Whatever an interrupted earlier run left (the release, its cluster-scoped
    RBAC) is removed first and last."""
    def clean(wait):
        subprocess.run([hack_shell("tool_bin helm"), "uninstall", RELEASE, "-n", NS, "--ignore-not-found", "--wait"],
                       capture_output=True, timeout=180)
        kubectl("delete", "clusterroles,clusterrolebindings", "-l", f"app.kubernetes.io/instance={RELEASE}",
                "--ignore-not-found", check=False)
        kubectl("delete", "namespace", NS, "--ignore-not-found", f"--wait={str(wait).lower()}", "--timeout=120s",
                check=False, timeout=150)
    clean(True)
    kubectl("create", "namespace", NS)
    kubectl("label", "namespace", NS, "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/warn=restricted")
    yield NS
    clean(False)


def test_server_side_dry_run(helm, prometheus_operator_crds, crd, release_namespace):
    for extra in ([], ["-f", ALL_VALUES, "--api-versions", "monitoring.coreos.com/v1"]):
        manifest = helm("template", RELEASE, CHART, "-n", NS, *extra).stdout
        p = kubectl("apply", "--dry-run=server", "-n", NS, "-f", "-", input=manifest)
        lines = p.stdout.strip().splitlines()
        assert len(lines) == len([d for d in yaml.safe_load_all(manifest) if d]), p.stdout
        assert all(ln.endswith("(server dry run)") for ln in lines), p.stdout
        assert "Warning" not in p.stderr, p.stderr  # e.g. "would violate PodSecurity restricted"


# ---- helm install, the operator in-cluster, leader election, upgrade, uninstall ------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def secret_value(name, key):
    return base64.b64decode(kubectl_json("get", "secret", name, "-n", NS)["data"][key]).decode()


def ts(line):
    return datetime.fromisoformat(line["ts"].replace("Z", "+00:00")).timestamp()


class Replica:
    """nimbus-operator run as one of the chart's pods would run it."""

    def __init__(self, name, container, sa_dir, apiserver, log_path):
        self.name, self.log_path = name, log_path
        self.metrics_port, self.health_port, self.api_port = free_port(), free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG" and not k.startswith("DB_")}
        for e in container["env"]:
            if "value" in e:
                env[e["name"]] = e["value"]
            elif "fieldRef" in e["valueFrom"]:
                path = e["valueFrom"]["fieldRef"]["fieldPath"]
                env[e["name"]] = {"metadata.name": name, "metadata.namespace": NS}[path]
            else:
                ref = e["valueFrom"]["secretKeyRef"]
                env[e["name"]] = secret_value(ref["name"], ref["key"])
        host, port = apiserver
        env.update(KUBERNETES_SERVICE_HOST=host, KUBERNETES_SERVICE_PORT=port, NIMBUS_SERVICE_ACCOUNT_DIR=sa_dir)
        ports = {"--metrics-bind-address": self.metrics_port, "--health-probe-bind-address": self.health_port,
                 "--api-bind-address": self.api_port}
        args = []
        for a in container["args"]:
            flag = a.split("=", 1)[0]
            if flag in ports:  # the pod listens on every interface; here only on loopback
                a = f"{flag}=127.0.0.1:{ports[flag]}"
            if flag == "--dashboard-dir":  # the image's copy of the build; here hack/setup's
                a = f"{flag}={os.path.join(ROOT, 'frontend', 'dist')}"
            args.append(a.replace("$(POD_NAMESPACE)", NS))
        self.args = args
        self.log = open(log_path, "w")
        self.killed_at = None
        self.proc = subprocess.Popen([os.path.join(os.environ["NIMBUS_BUILD_DIR"], "operator", "nimbus-operator"),
                                      *args], env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def lines(self):
        with open(self.log_path) as f:
            return [json.loads(ln) for ln in f if ln.startswith("{")]

    def said(self, msg):
        return [ln for ln in self.lines() if ln["msg"] == msg]

    def get(self, port, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return None, ""

    def metrics(self):
        status, body = self.get(self.metrics_port, "/metrics")
        assert status == 200, (status, body)
        return body

    def kill9(self):
        self.killed_at = time.time()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=40)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


def sample(metrics_text, name, **labels):
    """The value of one series in a Prometheus text exposition, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for ln in metrics_text.splitlines():
        if ln.startswith("#"):
            continue
        series, _, value = ln.rpartition(" ")
        n, _, rest = series.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if n == name and got == want:
            return float(value)
    return None


def series_names(metrics_text):
    return {re.split(r"[{ ]", ln, maxsplit=1)[0] for ln in metrics_text.splitlines() if ln and not ln.startswith("#")}


def cr_doc(name, tid, replicas, **spec):
    return json.dumps({"apiVersion": "nimbus.io/v1", "kind": "ComputeRequest",
                       "metadata": {"name": name, "namespace": f"nimbus-{tid}"},
                       "spec": {"tenantId": tid, "image": "nginx", "cpu": "200m", "memory": "256Mi",
                                "replicas": replicas, **spec}})


def api_call(replica, method, path, body=None, token=None):
    """A REST API request to one replica; the decoded JSON answer (None when empty). Fails on 4xx/5xx."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"http://127.0.0.1:{replica.api_port}{path}", method=method, headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            text = r.read().decode()
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{method} {path} on {replica.name}: {e.code} {e.read().decode()[:500]}")
    return json.loads(text) if text else None


def operator_cli(*args):
    return run(os.path.join(os.environ["NIMBUS_BUILD_DIR"], "operator", "nimbus-operator"), *args, timeout=60)


def leftovers():
    """Objects of the release still in the cluster (pods that are terminating included)."""
    sel = f"app.kubernetes.io/instance={RELEASE}"
    kinds = "deployments,replicasets,pods,services,serviceaccounts,secrets,configmaps,roles,rolebindings,leases," \
            "poddisruptionbudgets,ingresses"
    items = kubectl_json("get", kinds, "-n", NS, "-l", sel)["items"]
    items += kubectl_json("get", "clusterroles,clusterrolebindings", "-l", sel)["items"]
    names = [f"{i['kind']}/{i['metadata']['name']}" for i in items]
    # Objects without the labels: the helm release records and anything else the chart may have named.
    for kind in ("serviceaccount", "secret", "lease"):
        for i in kubectl_json("get", kind, "-n", NS)["items"]:
            n = i["metadata"]["name"]
            if n.startswith(RELEASE) or n.startswith("sh.helm.release"):
                names.append(f"{i['kind']}/{n}")
    return sorted(set(names))


def test_install_in_cluster_rbac_leader_election_upgrade_uninstall(helm, crd, release_namespace, tmp_path):
    db = {k: os.environ[k] for k in ("DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD")}
    helm("install", RELEASE, CHART, "-n", NS, "--wait", "--timeout", "120s",
         "--set", f"database.host={db['DB_HOST']}", "--set", f"database.port={db['DB_PORT']}",
         "--set", f"database.name={db['DB_NAME']}", "--set", f"database.user={db['DB_USER']}",
         "--set", f"database.password={db['DB_PASSWORD']}", "--set", "database.sslmode=disable",
         "--set", f"leaderElection.leaseDuration={LEASE_S}s", "--set", f"leaderElection.renewDeadline={RENEW_S}s",
         "--set", f"leaderElection.retryPeriod={int(RETRY_S * 1000)}ms",
         "--set", "operator.billingPeriod=5s", "--set", "operator.autoscalerPeriod=5s")
    sel = f"app.kubernetes.io/instance={RELEASE}"
    # Every object is there; kwok runs the chart's two pods, admitted under the restricted standard.
    made = leftovers()
    for want in ("Deployment/nimbus", "Service/nimbus", "ServiceAccount/nimbus", "Secret/nimbus", "Role/nimbus-leader-election",
                 "RoleBinding/nimbus-leader-election", "ClusterRole/nimbus", "ClusterRoleBinding/nimbus",
                 "Lease/nimbus-operator-leader", "PodDisruptionBudget/nimbus"):
        assert want in made, made
    pods = kubectl_json("get", "pods", "-n", NS, "-l", sel)["items"]
    assert len(pods) == 2 and all(p["status"]["phase"] == "Running" for p in pods), pods
    jwt = secret_value(RELEASE, "jwt-secret")
    admin_password = secret_value(RELEASE, "admin-password")
    assert len(jwt) == 48 and len(admin_password) == 24
    assert secret_value(RELEASE, "db-password") == db["DB_PASSWORD"]

    # Least privilege, seen from the apiserver: what the operator needs and nothing broad.
    def can(*args):
        return kubectl("auth", "can-i", *args, f"--as={SA}", check=False).stdout.strip() == "yes"
    assert can("create", "pods", "--subresource=binding", "-A") and can("delete", "computerequests.nimbus.io", "-A")
    assert can("patch", "computerequests.nimbus.io", "--subresource=scale", "-A")
    assert can("bind", "clusterroles/edit") and not can("bind", "clusterroles/admin")
    for verb, what in (("list", "secrets"), ("get", "secrets"), ("create", "pods"), ("delete", "pods"),
                       ("update", "deployments.apps"), ("create", "clusterrolebindings"), ("escalate", "clusterroles"),
                       ("get", "pods --subresource=log"), ("create", "pods --subresource=exec")):
        assert not can(verb, *what.split(), "-A"), f"the chart's ServiceAccount may {verb} {what}"

    # The service-account directory of a pod: token, CA, namespace.
    sa_dir = tmp_path / "serviceaccount"
    sa_dir.mkdir()
    (sa_dir / "token").write_text(kubectl("create", "token", RELEASE, "-n", NS, "--duration=1h").stdout.strip())
    with open(os.path.join(os.environ["NIMBUS_CLUSTER_RUN_DIR"], "pki", "ca.crt")) as f:
        (sa_dir / "ca.crt").write_text(f.read())
    (sa_dir / "namespace").write_text(NS)
    server = kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout
    host, port = re.match(r"https://([^:/]+):(\d+)", server).groups()
    container = kubectl_json("get", "deployment", RELEASE, "-n", NS)["spec"]["template"]["spec"]["containers"][0]

    replicas = [Replica(f"{RELEASE}-replica-{i}", container, str(sa_dir), (host, port),
                        str(tmp_path / f"replica-{i}.log")) for i in range(2)]
    tid = f"chart{uuid.uuid4().hex[:6]}"
    ns = f"nimbus-{tid}"
    try:
        for r in replicas:
            wait_until(lambda: r.proc.poll() is not None or r.get(r.health_port, "/readyz")[0] == 200, 60,
                       what=f"{r.name} to be ready")
            assert r.proc.poll() is None, open(r.log_path).read()[-3000:]
            assert r.said("kubernetes client ready")[0]["config"] == f"in-cluster config ({sa_dir})"
        leader = wait_until(lambda: next((r for r in replicas if r.said("reconcilers started")), None), 30,
                            what="one replica to lead")
        follower = next(r for r in replicas if r is not leader)
        lease = kubectl_json("get", "lease", "nimbus-operator-leader", "-n", NS)
        assert lease["spec"]["holderIdentity"] == leader.name and lease["spec"]["leaseDurationSeconds"] == LEASE_S
        assert lease["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"  # the chart's Lease, taken over
        # Followers serve reads: ready, with full caches and their metrics, and the dashboard.
        assert follower.get(follower.health_port, "/readyz")[0] == 200
        status, page = wait_until(lambda: (lambda r: r[0] is not None and r)(follower.get(follower.api_port, "/ui/tenants")),
                                  30, what="the follower's API")  # it binds right after /readyz turns 200
        assert status == 200 and '<div id="root">' in page, (status, page[:300])
        assert sample(follower.metrics(), "nimbus_informer_synced", kind="Pod") == 1

        # The demo, on the leader: a tenant (namespace, quota, limits, network policy, role binding)...
        operator_cli("tenant", "create", tid, "--cpu", "4", "--memory", "4Gi", "--pods", "20")
        for kind, name in (("resourcequota", "nimbus-quota"), ("limitrange", "nimbus-defaults"),
                           ("networkpolicy", "nimbus-default-deny"), ("rolebinding", "nimbus-tenant")):
            wait_until(lambda: kubectl("get", kind, name, "-n", ns, check=False).returncode == 0, 30,
                       what=f"{kind} {name} of the tenant")
        wait_until(lambda: kubectl("get", "serviceaccount", "default", "-n", ns, check=False).returncode == 0, 60,
                   interval=0.2, what="the tenant namespace's default ServiceAccount")
        # The REST API on the follower (every replica serves it): the admin
        # logs in with the chart's generated password and creates, scales and
        # deletes a workload (computerequests create, scale, delete).
        token = api_call(follower, "POST", "/auth/token", {"username": "admin", "password": admin_password})["token"]
        assert any(t.get("id") == tid for t in api_call(follower, "GET", "/api/v1/tenants", token=token)["items"])
        wl = f"/api/v1/tenants/{tid}/workloads"
        api_call(follower, "POST", wl, {"name": "via-api", "image": "nginx", "cpu": "100m", "memory": "64Mi",
                                        "replicas": 1}, token=token)
        wait_until(lambda: kubectl("get", "computerequest", "via-api", "-n", ns, check=False).returncode == 0, 10,
                   what="the ComputeRequest created through the API")
        api_call(follower, "PATCH", f"{wl}/via-api", {"replicas": 2}, token=token)
        assert kubectl_json("get", "computerequest", "via-api", "-n", ns)["spec"]["replicas"] == 2
        api_call(follower, "DELETE", f"{wl}/via-api", token=token)
        wait_until(lambda: kubectl("get", "computerequest", "via-api", "-n", ns, check=False).returncode != 0, 30,
                   what="the ComputeRequest deleted through the API")

        # ...a ComputeRequest that the autoscaler grows (usage 95% of the request, target 50%)...
        kubectl("apply", "-f", "-", input=cr_doc("web", tid, 1, autoscaling={
            "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50},
            podAnnotations={"kwok.x-k8s.io/usage-cpu": "190m", "kwok.x-k8s.io/usage-memory": "64Mi"}))
        kubectl("wait", "--for=condition=Ready", "computerequest/web", "-n", ns, "--timeout=60s")
        wait_until(lambda: kubectl_json("get", "computerequest", "web", "-n", ns)["spec"]["replicas"] > 1, 120,
                   interval=1, what="the autoscaler to scale the ComputeRequest up (computerequests/scale)")
        # ...billing sampling metrics.k8s.io, nimbus-scheduler binding the pods.
        wait_until(lambda: (sample(leader.metrics(), "nimbus_billing_samples_total", result="ok") or 0) > 0, 30,
                   what="a billing sample")
        wait_until(lambda: (sample(leader.metrics(), "nimbus_scheduler_attempts_total", result="scheduled") or 0) >= 2,
                   60, what="nimbus-scheduler to bind the pods")

        # /metrics is valid exposition, and every query of the dashboard and the
        # alerts names a metric the operator exports.
        exported = set()
        for r in (leader, follower):  # the follower answered the API calls
            text = r.metrics()
            p = run("promtool", "check", "metrics", input=text, check=False)
            assert p.returncode == 0, f"{r.name}: {p.stdout}{p.stderr}"
            exported |= series_names(text)
        for title, expr in dashboard_queries():
            missing = metric_names(expr) - exported
            assert not missing, f"dashboard panel {title!r} queries {missing}, which /metrics does not export"
        for g in alert_rules(helm)["groups"]:
            for rule in g["rules"]:
                missing = metric_names(rule["expr"]) - exported
                assert not missing, f"alert {rule['alert']} uses {missing}, which /metrics does not export"
        assert not follower.said("reconcilers started"), "the follower acted while the leader led"

        # Kill the leader: the follower takes over within the lease duration.
        transitions = kubectl_json("get", "lease", "nimbus-operator-leader", "-n", NS)["spec"].get("leaseTransitions", 0)
        leader.kill9()
        started = wait_until(lambda: follower.said("reconcilers started"), TAKEOVER_MAX_S + 5, interval=0.1,
                             what="the follower to take over")
        took = ts(started[0]) - leader.killed_at
        assert took <= TAKEOVER_MAX_S, f"takeover after {took:.1f}s"
        assert ts(follower.said("became the leader")[0]) > leader.killed_at
        lease = kubectl_json("get", "lease", "nimbus-operator-leader", "-n", NS)["spec"]
        assert lease["holderIdentity"] == follower.name and lease["leaseTransitions"] == transitions + 1
        leader, follower = follower, None

        # The new leader acts: a second ComputeRequest is created and scheduled, then the tenant deleted.
        kubectl("apply", "-f", "-", input=cr_doc("api", tid, 2))
        kubectl("wait", "--for=condition=Ready", "computerequest/api", "-n", ns, "--timeout=60s")
        pods = kubectl_json("get", "pods", "-n", ns)["items"]
        assert len(pods) >= 4 and all(p["spec"]["schedulerName"] == "nimbus-scheduler" and p["spec"]["nodeName"]
                                      for p in pods)
        # No double action: each pod bound once, each Deployment created once.
        events = kubectl_json("get", "events", "-n", ns)["items"]
        for pod in pods:
            bound = [e for e in events if e["reason"] == "Scheduled" and e["involvedObject"]["name"] == pod["metadata"]["name"]]
            assert len(bound) == 1, (pod["metadata"]["name"], bound)
        for name in ("web", "api"):
            made_dep = [e for e in events if e["reason"] == "DeploymentCreated" and e["involvedObject"]["name"] == name]
            assert len(made_dep) == 1, (name, made_dep)

        # helm upgrade under a running leader: a third replica in the Deployment,
        # the generated JWT secret kept, the Lease's holder untouched.
        helm("upgrade", RELEASE, CHART, "-n", NS, "--reuse-values", "--set", "replicaCount=3", "--wait",
             "--timeout", "120s")
        assert kubectl_json("get", "deployment", RELEASE, "-n", NS)["spec"]["replicas"] == 3
        assert secret_value(RELEASE, "jwt-secret") == jwt
        assert secret_value(RELEASE, "admin-password") == admin_password
        time.sleep(RETRY_S * 3)
        assert kubectl_json("get", "lease", "nimbus-operator-leader", "-n", NS)["spec"]["holderIdentity"] == leader.name
        assert not leader.said("lost the leader lease")

        operator_cli("tenant", "delete", tid)
        wait_until(lambda: kubectl("get", "namespace", ns, check=False).returncode != 0, 120, interval=1,
                   what="the tenant's namespace to be deleted")
        wait_until(lambda: tid not in operator_cli("tenant", "list").stdout, 30, interval=1,
                   what="the tenant row to be deleted")

        # SIGTERM: a clean exit that releases the lease.
        assert leader.terminate() == 0, open(leader.log_path).read()[-3000:]
        assert kubectl_json("get", "lease", "nimbus-operator-leader", "-n", NS)["spec"]["holderIdentity"] == ""

        # The RBAC was enough for all of it: not one request refused by the
        # authorizer, in either replica. (403s from admission are not RBAC:
        # events in the tenant namespace being deleted are refused by
        # NamespaceLifecycle, "because it is being terminated".)
        for r in replicas:
            refused = [ln for ln in r.lines() if re.search(r'forbidden: User \\"|cannot \w+ resource', json.dumps(ln))]
            assert not refused, f"{r.name}: {refused[:3]}"
    finally:
        for r in replicas:
            r.stop()
        kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=false", check=False)
        run(os.path.join(os.environ["NIMBUS_BUILD_DIR"], "operator", "nimbus-operator"), "tenant", "delete", tid,
            check=False)

    # helm uninstall leaves nothing but the CRD.
    helm("uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "120s")
    wait_until(lambda: not leftovers(), 60, interval=1, what="every object of the release to be gone")
    kubectl("get", "crd", "computerequests.nimbus.io")
    assert RELEASE not in helm("list", "-n", NS, "-q").stdout
