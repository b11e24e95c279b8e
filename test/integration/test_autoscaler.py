"""The autoscaler on the real cluster, side by side with the HorizontalPodAutoscaler.

Pod usage comes from kwok, which reports what the pod annotation
kwok.x-k8s.io/usage-cpu says, through metrics-server (10 s resolution in the
test cluster). kube-controller-manager runs the HPA with a 5 s sync period
(hack/cluster); nimbus-operator runs with the same 5 s sampling period, and
both get a 45 s scale-down stabilization window instead of the 5 min default,
so that the comparison fits in a couple of minutes (45 s is longer than the
~30 s a new pod takes to report a sample, so the window is what the
scale-down waits for).
"""
import json
import os
import subprocess
import time
import uuid

import pytest

from conftest import ROOT, kubectl, kubectl_json, wait_until

PERIOD_S = 5
WINDOW_S = 45
USAGE = "kwok.x-k8s.io/usage-cpu"
SCHEDULER = "nimbus-scheduler"


def make_tenant(tid, quota=None):
    ns = f"nimbus-{tid}"
    kubectl("create", "namespace", ns)
    kubectl("label", "namespace", ns, f"nimbus.io/tenant={tid}")
    wait_until(lambda: kubectl("get", "serviceaccount", "default", "-n", ns, check=False).returncode == 0,
               30, interval=0.2, what="default ServiceAccount")
    if quota:
        kubectl("create", "quota", "nimbus-quota", "-n", ns, f"--hard={quota}")
    return ns


@pytest.fixture
def tenant():
    made = []

    def make(quota=None):
        tid = f"t{uuid.uuid4().hex[:8]}"
        made.append(make_tenant(tid, quota))
        return tid
    yield make
    for ns in made:
        kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)


def cr_doc(name, tid, usage, lo=1, hi=5):
    return json.dumps({"apiVersion": "nimbus.io/v1", "kind": "ComputeRequest",
                       "metadata": {"name": name, "namespace": f"nimbus-{tid}"},
                       "spec": {"tenantId": tid, "image": "nginx", "cpu": "200m", "memory": "256Mi", "replicas": lo,
                                "schedulerName": SCHEDULER, "podAnnotations": {USAGE: usage},
                                "autoscaling": {"minReplicas": lo, "maxReplicas": hi,
                                                "targetCPUUtilizationPercentage": 70}}})


def hpa_docs(ns, name, usage):
    """The same workload as a plain Deployment with an autoscaling/v2 HPA."""
    labels = {"app": name}
    res = {"cpu": "200m", "memory": "256Mi"}
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
           "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels, "annotations": {USAGE: usage}},
                                 "spec": {"schedulerName": SCHEDULER,
                                          "containers": [{"name": "workload", "image": "nginx",
                                                          "resources": {"requests": res, "limits": res}}]}}}}
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name, "namespace": ns},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    "minReplicas": 1, "maxReplicas": 5,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                        "type": "Utilization", "averageUtilization": 70}}}],
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": WINDOW_S}}}}
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [dep, hpa]})


def replicas(kind, ns, name):
    out = kubectl("get", kind, name, "-n", ns, "-o", "jsonpath={.spec.replicas}", check=False)
    return int(out.stdout) if out.returncode == 0 and out.stdout else None


class Tracker:
    """Replicas of one workload over time: when it first went above or below a mark."""

    def __init__(self, kind, ns, name):
        self.kind, self.ns, self.name = kind, ns, name
        self.history = []

    def poll(self):
        n = replicas(self.kind, self.ns, self.name)
        if n is not None and (not self.history or self.history[-1][1] != n):
            self.history.append((time.monotonic(), n))
        return n


def test_scales_like_the_hpa(operator, tenant, namespace):
    op = operator(f"--controllers=workload,scheduler,autoscaler", f"--autoscaler-period={PERIOD_S}s",
                  f"--autoscaler-downscale-stabilization={WINDOW_S}s")
    tid = tenant()
    ns = f"nimbus-{tid}"
    nimbus = Tracker("computerequest", ns, "web")
    hpa = Tracker("deployment", namespace, "plain")

    # Scale-up: both start with one replica whose pod uses 95 % of its request.
    t_cr = time.monotonic()
    kubectl("apply", "-f", "-", input=cr_doc("web", tid, "190m"))
    t_hpa = time.monotonic()
    kubectl("apply", "-f", "-", input=hpa_docs(namespace, "plain", "190m"))
    up = {}

    def scaled_up():
        for key, tr, t0 in (("nimbus", nimbus, t_cr), ("hpa", hpa, t_hpa)):
            n = tr.poll()
            if key not in up and n and n > 1:
                up[key] = time.monotonic() - t0
        return len(up) == 2
    wait_until(scaled_up, 120, interval=0.25, what="both to scale up")

    # Scale-down: lower the usage through the pod template (a rollout, the
    # same for both) and time the first step down.
    t_cr = time.monotonic()
    kubectl("patch", "computerequest", "web", "-n", ns, "--type=merge",
            "-p", json.dumps({"spec": {"podAnnotations": {USAGE: "20m"}}}))
    t_hpa = time.monotonic()
    kubectl("patch", "deployment", "plain", "-n", namespace, "--type=merge",
            "-p", json.dumps({"spec": {"template": {"metadata": {"annotations": {USAGE: "20m"}}}}}))
    peak = {"nimbus": nimbus.poll(), "hpa": hpa.poll()}
    down = {}

    def scaled_down():
        for key, tr, t0 in (("nimbus", nimbus, t_cr), ("hpa", hpa, t_hpa)):
            n = tr.poll()
            if key in down or n is None:
                continue
            if n > peak[key]:
                peak[key] = n  # still rising on samples taken before the change
            elif n < peak[key]:
                down[key] = time.monotonic() - t0
        return len(down) == 2
    wait_until(scaled_down, 150, interval=0.25, what="both to scale down")

    result = {"period_s": PERIOD_S, "downscale_stabilization_s": WINDOW_S,
              "scale_up_s": {k: round(v, 1) for k, v in up.items()},
              "scale_down_s": {k: round(v, 1) for k, v in down.items()},
              "replicas": {"nimbus": [n for _, n in nimbus.history], "hpa": [n for _, n in hpa.history]}}
    print(f"\nautoscaler vs HPA: {json.dumps(result)}")
    os.makedirs(os.path.join(ROOT, "test-artifacts"), exist_ok=True)
    with open(os.path.join(ROOT, "test-artifacts", "autoscaler_vs_hpa.json"), "w") as f:
        json.dump(result, f, indent=1)

    # Replicas only come down once the window has passed since the last high
    # recommendation, which was at most one period before the change.
    assert down["nimbus"] >= WINDOW_S - PERIOD_S, result
    for phase in ("scale_up_s", "scale_down_s"):
        n, h = result[phase]["nimbus"], result[phase]["hpa"]
        assert n <= max(1.5 * h, h + PERIOD_S), f"Nimbus is slower than the HPA at {phase}: {result}"

    cr = kubectl_json("get", "computerequest", "web", "-n", ns)
    st = cr["status"]["autoscaling"]
    assert st["desiredReplicas"] == cr["spec"]["replicas"] and st["lastScaleTime"] and st["reason"]
    events = kubectl_json("get", "events", "-n", ns, "--field-selector", "involvedObject.kind=ComputeRequest")["items"]
    rescales = [e["message"] for e in events if e["reason"] == "SuccessfulRescale"]
    assert any(m.startswith("New size: 2; reason: cpu utilization 95% above target 70%") for m in rescales), rescales
    assert not [ln for ln in op.lines() if ln["level"] in ("warn", "error") and ln.get("logger") == "autoscaler"]


def test_quota_caps_the_scale_up(operator, tenant):
    """A tenant quota of 500m fits two 200m replicas: the scale-up stops
    there, once, and says so in the status and one Warning event."""
    operator("--controllers=workload,scheduler,autoscaler", f"--autoscaler-period={PERIOD_S}s",
             f"--autoscaler-downscale-stabilization={WINDOW_S}s")
    tid = tenant(quota="requests.cpu=500m,pods=10")
    ns = f"nimbus-{tid}"
    kubectl("apply", "-f", "-", input=cr_doc("hot", tid, "400m"))

    def capped():
        cr = kubectl_json("get", "computerequest", "hot", "-n", ns)
        reason = cr.get("status", {}).get("autoscaling", {}).get("reason", "")
        return cr["spec"]["replicas"] == 2 and reason.startswith("capped by tenant quota") and cr
    cr = wait_until(capped, 120, interval=0.5, what="a scale-up capped at 2 by the quota")
    assert cr["status"]["autoscaling"]["reason"].startswith(
        "capped by tenant quota: quota nimbus-quota allows 2 replicas (requests.cpu hard 500m, 0 used by other pods, "
        "200m per replica); cpu utilization 200% above target 70%"), cr["status"]["autoscaling"]
    assert cr["status"]["autoscaling"]["desiredReplicas"] == 2
    limited = [c for c in cr["status"]["autoscaling"]["conditions"] if c["type"] == "ScalingLimited"]
    assert limited and limited[0]["status"] == "True" and limited[0]["reason"] == "QuotaLimited", limited
    assert "quota nimbus-quota allows 2 replicas" in limited[0]["message"], limited
    # Nothing pushes past the quota meanwhile, and the cap is reported once.
    time.sleep(2 * PERIOD_S)
    assert replicas("computerequest", ns, "hot") == 2
    events = kubectl_json("get", "events", "-n", ns, "--field-selector", "involvedObject.kind=ComputeRequest")["items"]
    warnings = [e for e in events if e["reason"] == "QuotaLimited"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning", warnings
    assert "quota nimbus-quota allows 2 replicas" in warnings[0]["message"]
    cond = [c for c in kubectl_json("get", "computerequest", "hot", "-n", ns)["status"]["conditions"]
            if c["type"] == "Degraded"]
    assert cond and cond[0]["status"] == "False", cond


def cluster(*args):
    """hack/cluster on the cluster KUBECONFIG points at (its run dir holds admin.kubeconfig)."""
    run_dir = os.environ.get("NIMBUS_CLUSTER_RUN_DIR") or os.path.dirname(os.environ["KUBECONFIG"])
    proc = subprocess.run([os.path.join(ROOT, "hack/cluster"), *args, "--run-dir", run_dir],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"hack/cluster {' '.join(args)} failed: {proc.stdout}{proc.stderr}"


def test_metrics_outage_holds_replicas_and_is_logged_once(operator, tenant):
    op = operator("--controllers=workload,scheduler,autoscaler", f"--autoscaler-period={PERIOD_S}s",
                  f"--autoscaler-downscale-stabilization={WINDOW_S}s")
    tid = tenant()
    ns = f"nimbus-{tid}"
    kubectl("apply", "-f", "-", input=cr_doc("web", tid, "100m", lo=2))

    def status():
        return kubectl_json("get", "computerequest", "web", "-n", ns).get("status", {}).get("autoscaling", {})
    wait_until(lambda: status().get("currentCPUUtilizationPercentage") == 50, 90, interval=1,
               what="a utilization from metrics.k8s.io")
    try:
        cluster("stop", "metrics-server")
        st = wait_until(lambda: (s := status()) and s["reason"].startswith("cannot read metrics: ") and s, 30,
                        interval=1, what="the outage in status.autoscaling.reason")
        assert "currentCPUUtilizationPercentage" not in st and st["desiredReplicas"] == 2, st
        time.sleep(3 * PERIOD_S)
        assert replicas("computerequest", ns, "web") == 2
    finally:
        cluster("start", "metrics-server")
    wait_until(lambda: status().get("currentCPUUtilizationPercentage") == 50, 120, interval=1,
               what="utilization again once metrics-server is back")
    msgs = [ln["msg"] for ln in op.lines() if ln.get("logger") == "autoscaler"]
    assert msgs.count("cannot read pod usage from metrics.k8s.io; not scaling until it answers "
                      "(is metrics-server installed?)") == 1, msgs
    assert msgs.count("pod usage from metrics.k8s.io available again") == 1, msgs
    assert replicas("computerequest", ns, "web") == 2
