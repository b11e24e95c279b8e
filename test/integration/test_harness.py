"""The local cluster is real: scheduling, kwok pod lifecycle, metrics, quota, namespace deletion."""
import json

from conftest import kubectl, kubectl_json, wait_until

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: %(ns)s}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations:
        kwok.x-k8s.io/usage-cpu: 150m
        kwok.x-k8s.io/usage-memory: 64Mi
    spec:
      containers:
      - name: web
        image: nginx
        resources: {requests: {cpu: 200m, memory: 128Mi}}
"""


def test_nodes_are_ready_kwok_nodes():
    nodes = kubectl_json("get", "nodes")["items"]
    assert len(nodes) >= 4
    for n in nodes:
        assert n["metadata"]["annotations"].get("kwok.x-k8s.io/node") == "fake"
        ready = [c for c in n["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", n["metadata"]["name"]


def test_deployment_runs_and_reports_usage(namespace):
    kubectl("apply", "-f", "-", input=DEPLOYMENT % {"ns": namespace})

    def running():
        pods = kubectl_json("get", "pods", "-n", namespace)["items"]
        ok = [p for p in pods if p["status"].get("phase") == "Running" and p["spec"].get("nodeName")]
        return len(ok) == 3 and pods
    pods = wait_until(running, 60, what="3 Running pods scheduled by kube-scheduler")
    assert all(p["spec"]["schedulerName"] == "default-scheduler" for p in pods)

    def top():
        out = kubectl("top", "pod", "-n", namespace, "--no-headers", check=False)
        lines = [ln.split() for ln in out.stdout.splitlines() if ln.strip()]
        return len(lines) == 3 and lines
    rows = wait_until(top, 90, interval=2, what="kubectl top pod to report 3 pods")
    for name, cpu, mem in rows:
        # CPU is a rate metrics-server derives from two cumulative samples, so
        # scrape timing moves it by a millicore or two; memory is a gauge.
        assert cpu.endswith("m") and abs(int(cpu[:-1]) - 150) <= 3, (name, cpu)
        assert mem == "64Mi", (name, mem)


def test_resource_quota_rejects_pod_over_quota(namespace):
    kubectl("create", "quota", "small", "-n", namespace, "--hard=requests.cpu=100m,requests.memory=64Mi,pods=2")
    wait_until(lambda: kubectl_json("get", "resourcequota", "small", "-n", namespace)
               .get("status", {}).get("hard"), 30, what="quota status")
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "big", "namespace": namespace},
        "spec": {"containers": [{"name": "c", "image": "nginx",
                                 "resources": {"requests": {"cpu": "500m", "memory": "32Mi"}}}]},
    }
    out = kubectl("apply", "-f", "-", input=json.dumps(pod), check=False)
    assert out.returncode != 0
    assert "exceeded quota: small" in out.stderr
    assert "requests.cpu" in out.stderr


def test_namespace_deletion_removes_it():
    kubectl("create", "namespace", "t-delete-me")
    kubectl("create", "configmap", "x", "-n", "t-delete-me", "--from-literal=a=b")
    kubectl("delete", "namespace", "t-delete-me", "--timeout=60s")
    out = kubectl("get", "namespace", "t-delete-me", check=False)
    assert out.returncode != 0 and "NotFound" in out.stderr
