"""ComputeRequest → Deployment with nimbus-operator on the real cluster, through kubectl.

The seed demo creates its tenant through `nimbus-operator tenant create`
(PostgreSQL + the tenant reconciler). The other tests make a tenant as what
the reconciler creates, a namespace nimbus-<id> labelled nimbus.io/tenant=<id>,
so that they exercise the workload reconciler alone.
"""
import json
import os
import subprocess
import time
import uuid

import pytest

from conftest import kubectl, kubectl_json, wait_until


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

    def make(quota=None, label=True):
        tid = f"t{uuid.uuid4().hex[:8]}"
        ns = make_tenant(tid, quota) if label else None
        made.append(f"nimbus-{tid}")
        return tid
    yield make
    for ns in made:
        kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)


def cr_doc(name, tid, replicas=1, cpu="200m", memory="256Mi", **spec):
    s = {"tenantId": tid, "image": "nginx", "cpu": cpu, "memory": memory, "replicas": replicas}
    s.update(spec)
    return json.dumps({"apiVersion": "nimbus.io/v1", "kind": "ComputeRequest",
                       "metadata": {"name": name, "namespace": f"nimbus-{tid}"}, "spec": s})


def deployment(ns, name):
    out = kubectl("get", "deployment", name, "-n", ns, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def condition(cr, ctype):
    for c in cr.get("status", {}).get("conditions", []):
        if c["type"] == ctype:
            return c
    return None


def get_cr(ns, name):
    return kubectl_json("get", "computerequest", name, "-n", ns)


def operator_cli(build_dir, *args):
    return subprocess.run([os.path.join(build_dir, "operator/nimbus-operator"), *args],
                          capture_output=True, text=True, timeout=60)


def test_seed_demo_with_kubectl(operator, build_dir):
    """The original README's demo: a tenant, a ComputeRequest applied with kubectl,
    its pod bound by nimbus-scheduler, scaled, deleted; then the tenant deleted."""
    operator("--controllers=tenant,workload,scheduler")
    tid = f"demo-{uuid.uuid4().hex[:6]}"
    ns = f"nimbus-{tid}"
    out = operator_cli(build_dir, "tenant", "create", tid, "--cpu", "2", "--memory", "2Gi", "--pods", "10")
    assert out.returncode == 0, out.stderr
    wait_until(lambda: kubectl("get", "resourcequota", "nimbus-quota", "-n", ns, check=False).returncode == 0, 10,
               interval=0.1, what="the tenant's namespace and quota")
    for kind, name in (("limitrange", "nimbus-defaults"), ("networkpolicy", "nimbus-default-deny"),
                       ("rolebinding", "nimbus-tenant")):
        wait_until(lambda: kubectl("get", kind, name, "-n", ns, check=False).returncode == 0, 10,
                   what=f"{kind} {name}")
    quota = kubectl_json("get", "resourcequota", "nimbus-quota", "-n", ns)
    assert quota["spec"]["hard"]["requests.cpu"] == "2" and quota["spec"]["hard"]["pods"] == "10"
    assert tid in operator_cli(build_dir, "tenant", "list").stdout
    wait_until(lambda: kubectl("get", "serviceaccount", "default", "-n", ns, check=False).returncode == 0, 60,
               interval=0.2, what="default ServiceAccount")

    # How fast is hack/bench/reconcile's to measure, against a peer in the
    # same run; a wall-clock bound here only fails when the machine is busy.
    kubectl("apply", "-f", "-", input=cr_doc("web-server", tid))
    dep = wait_until(lambda: deployment(ns, "nimbus-web-server"), 10, interval=0.05, what="the Deployment")
    owner = dep["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "ComputeRequest" and owner["controller"] is True
    tpl = dep["spec"]["template"]
    assert tpl["metadata"]["labels"]["nimbus.io/tenant"] == tid
    assert tpl["spec"]["schedulerName"] == "nimbus-scheduler"
    res = tpl["spec"]["containers"][0]["resources"]
    assert res["requests"] == {"cpu": "200m", "memory": "256Mi"} and res["limits"] == res["requests"]

    kubectl("wait", "--for=condition=Ready", "computerequest/web-server", "-n", ns, "--timeout=60s")
    pods = kubectl_json("get", "pods", "-n", ns)["items"]
    assert len(pods) == 1 and pods[0]["status"]["phase"] == "Running"
    assert pods[0]["spec"]["schedulerName"] == "nimbus-scheduler" and pods[0]["spec"]["nodeName"]
    scheduled = kubectl_json("get", "events", "-n", ns, "--field-selector", "reason=Scheduled")["items"]
    assert any("Successfully assigned" in e["message"] for e in scheduled)

    table = kubectl("get", "cr", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "TENANT", "IMAGE", "REPLICAS", "READY", "PHASE", "AGE"]
    assert table[1].split()[:6] == ["web-server", tid, "nginx", "1", "1", "Running"]

    kubectl("scale", "computerequest/web-server", "-n", ns, "--replicas=3")
    wait_until(lambda: get_cr(ns, "web-server").get("status", {}).get("readyReplicas") == 3, 60,
               what="3 ready replicas after kubectl scale")
    cr = get_cr(ns, "web-server")
    assert cr["status"]["phase"] == "Running"
    assert cr["status"]["observedGeneration"] == cr["metadata"]["generation"]
    assert condition(cr, "Degraded")["status"] == "False"
    events = kubectl_json("get", "events", "-n", ns, "--field-selector", "involvedObject.kind=ComputeRequest")["items"]
    assert any(e["reason"] == "DeploymentCreated" for e in events)

    kubectl("delete", "computerequest", "web-server", "-n", ns)
    wait_until(lambda: deployment(ns, "nimbus-web-server") is None, 60, what="the Deployment to be collected")
    wait_until(lambda: not kubectl_json("get", "pods", "-n", ns)["items"], 60, what="the pods to go")

    out = operator_cli(build_dir, "tenant", "delete", tid)
    assert out.returncode == 0, out.stderr
    wait_until(lambda: kubectl("get", "namespace", ns, check=False).returncode != 0, 120, interval=1,
               what="the tenant's namespace to be deleted")
    wait_until(lambda: tid not in operator_cli(build_dir, "tenant", "list").stdout, 30, interval=1,
               what="the tenant row to be deleted")


def test_drift_is_repaired(operator, tenant):
    operator("--controllers=workload,scheduler")
    tid = tenant()
    ns = f"nimbus-{tid}"
    kubectl("apply", "-f", "-", input=cr_doc("web", tid))
    first = wait_until(lambda: deployment(ns, "nimbus-web"), 10, what="the Deployment")
    kubectl("delete", "deployment", "nimbus-web", "-n", ns, "--wait=false")
    again = wait_until(lambda: (d := deployment(ns, "nimbus-web")) and d["metadata"]["uid"] != first["metadata"]["uid"]
                       and d, 5, interval=0.05, what="the deleted Deployment to come back")
    assert again["spec"]["replicas"] == 1
    kubectl("set", "image", "deployment/nimbus-web", "-n", ns, "workload=busybox")
    wait_until(lambda: deployment(ns, "nimbus-web")["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx",
               5, interval=0.05, what="the edited image to be restored")
    kubectl("scale", "deployment/nimbus-web", "-n", ns, "--replicas=4")
    wait_until(lambda: deployment(ns, "nimbus-web")["spec"]["replicas"] == 1, 5, interval=0.05,
               what="replicas to follow the ComputeRequest, not the Deployment")


def test_schema_and_cel_reject_bad_requests(crd, tenant):
    tid = tenant()
    out = kubectl("apply", "-f", "-", check=False, input=cr_doc("bad", tid, cpu="lots", memory="-1Gi",
                                                                 autoscaling={"minReplicas": 4, "maxReplicas": 2}))
    assert out.returncode != 0
    assert 'cpu must be a positive quantity such as "200m"' in out.stderr
    assert "memory must be a positive quantity" in out.stderr
    assert "minReplicas must not exceed" in out.stderr
    kubectl("apply", "-f", "-", input=cr_doc("ok", tid))
    out = kubectl("patch", "computerequest", "ok", "-n", f"nimbus-{tid}", "--type=merge",
                  "-p", '{"spec":{"tenantId":"other"}}', check=False)
    assert out.returncode != 0 and "tenantId is immutable" in out.stderr


def test_missing_tenant_is_degraded_until_created(operator, tenant):
    operator("--controllers=workload,scheduler")
    tid = tenant(label=False)
    ns = f"nimbus-{tid}"
    kubectl("create", "namespace", ns)
    kubectl("apply", "-f", "-", input=cr_doc("web", tid))
    cr = wait_until(lambda: (c := get_cr(ns, "web")) and condition(c, "Degraded") and c, 10, what="a status")
    assert condition(cr, "Degraded")["status"] == "True"
    assert condition(cr, "Degraded")["reason"] == "TenantNotFound"
    assert f"tenant {tid} does not exist" in condition(cr, "Degraded")["message"]
    assert cr["status"]["phase"] == "Degraded"
    assert deployment(ns, "nimbus-web") is None
    kubectl("label", "namespace", ns, f"nimbus.io/tenant={tid}")
    wait_until(lambda: deployment(ns, "nimbus-web"), 10, what="the Deployment once the tenant exists")
    kubectl("wait", "--for=condition=Ready", "computerequest/web", "-n", ns, "--timeout=60s")


def test_request_over_quota_is_degraded_with_numbers(operator, tenant):
    operator("--controllers=workload,scheduler")
    tid = tenant(quota="requests.cpu=500m,requests.memory=1Gi,pods=10")
    ns = f"nimbus-{tid}"
    kubectl("apply", "-f", "-", input=cr_doc("big", tid, replicas=3))
    cr = wait_until(lambda: (c := get_cr(ns, "big")) and condition(c, "Degraded") and c, 10, what="a status")
    deg = condition(cr, "Degraded")
    assert deg["status"] == "True" and deg["reason"] == "QuotaExceeded"
    assert "need 600m CPU" in deg["message"] and "allows 500m" in deg["message"]
    kubectl("scale", "computerequest/big", "-n", ns, "--replicas=2")
    wait_until(lambda: condition(get_cr(ns, "big"), "Degraded")["status"] == "False", 10,
               what="Degraded to clear once it fits")


def test_restart_creates_nothing_twice_and_misses_nothing(operator, tenant):
    op = operator("--controllers=workload,scheduler")
    tid = tenant()
    ns = f"nimbus-{tid}"
    kubectl("apply", "-f", "-", input=cr_doc("a", tid))
    first = wait_until(lambda: deployment(ns, "nimbus-a"), 10, what="Deployment a")
    op.stop()
    kubectl("apply", "-f", "-", input=cr_doc("b", tid))
    kubectl("delete", "deployment", "nimbus-a", "-n", ns, "--wait=false")
    op2 = operator("--controllers=workload,scheduler")
    wait_until(lambda: deployment(ns, "nimbus-b"), 10, what="Deployment b, created while the operator was down")
    a = wait_until(lambda: deployment(ns, "nimbus-a"), 10, what="Deployment a, deleted while the operator was down")
    assert a["metadata"]["uid"] != first["metadata"]["uid"]
    time.sleep(2)
    created = [ln for ln in op2.lines() if ln.get("msg") in ("deployment created", "deployment updated")]
    assert len(created) == 2, created
    assert all(ln["level"] in ("info", "debug") for ln in op2.lines()), [ln for ln in op2.lines() if ln["level"] != "info"]
