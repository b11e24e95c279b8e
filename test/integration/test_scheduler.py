"""nimbus-scheduler in nimbus-operator against the real cluster's kwok nodes.

Each test starts nimbus-operator with --controllers=scheduler and creates bare
pods with spec.schedulerName nimbus-scheduler. Tests that need particular
nodes add their own through hack/cluster add-nodes (with fixed indexes, so
they never collide) and delete them afterwards. After every test the whole
cluster is checked: on no node do the requests of its pods exceed its
allocatable cpu, memory or pod count.
"""
import json
import os
import re
import subprocess
import time
import uuid
from fractions import Fraction

import pytest

from conftest import ROOT, kubectl, kubectl_json, wait_until

SCHED = "nimbus-scheduler"

# ---------------------------------------------------------------- quantities

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": 1, "k": 10**3,
            "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


def qty(s):
    """A Kubernetes quantity as an exact Fraction of its unit."""
    s = str(s)
    m = re.fullmatch(r"([+-]?[0-9]*\.?[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+|[numkMGTPE]?)", s)
    assert m, f"not a quantity: {s!r}"
    num, suf = Fraction(m.group(1)), m.group(2)
    if suf in _BINARY:
        return num * _BINARY[suf]
    if suf[:1] in ("e", "E") and len(suf) > 1:
        return num * Fraction(10) ** int(suf[1:])
    return num * _DECIMAL[suf]


def pod_requests(pod):
    cpu = mem = Fraction(0)
    for c in pod["spec"].get("containers", []):
        req = c.get("resources", {}).get("requests", {})
        cpu += qty(req.get("cpu", "0"))
        mem += qty(req.get("memory", "0"))
    return cpu, mem


# ---------------------------------------------------------------- cluster helpers

def cluster(*args):
    """hack/cluster on the cluster KUBECONFIG points at (its run dir holds admin.kubeconfig)."""
    run_dir = os.environ.get("NIMBUS_CLUSTER_RUN_DIR") or os.path.dirname(os.environ["KUBECONFIG"])
    proc = subprocess.run([os.path.join(ROOT, "hack/cluster"), *args, "--run-dir", run_dir],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"hack/cluster {' '.join(args)} failed: {proc.stdout}{proc.stderr}"


def node_ready(name):
    out = kubectl("get", "node", name, "-o", "json", check=False)
    if out.returncode != 0:
        return False
    conds = json.loads(out.stdout).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def assert_no_overcommit():
    """On every node, bound non-terminal pods request at most its allocatable."""
    nodes = kubectl_json("get", "nodes")["items"]
    pods = kubectl_json("get", "pods", "--all-namespaces")["items"]
    for n in nodes:
        name = n["metadata"]["name"]
        alloc = n["status"].get("allocatable", {})
        on = [p for p in pods if p["spec"].get("nodeName") == name
              and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
        cpu = sum((pod_requests(p)[0] for p in on), Fraction(0))
        mem = sum((pod_requests(p)[1] for p in on), Fraction(0))
        assert cpu <= qty(alloc.get("cpu", "0")), f"node {name}: pods request {float(cpu)} cpu > {alloc.get('cpu')}"
        assert mem <= qty(alloc.get("memory", "0")), f"node {name}: pods request {mem} B > {alloc.get('memory')}"
        assert len(on) <= int(alloc.get("pods", "0")), f"node {name}: {len(on)} pods > {alloc.get('pods')}"


@pytest.fixture(autouse=True)
def no_overcommit_after():
    yield
    assert_no_overcommit()


@pytest.fixture
def nodes(namespace):
    """add(first, count, cpu=..., labels=..., taint=...) creates kwok nodes kwok-node-<first>...;
    at teardown the test's pods are deleted first (kwok finishes their deletion only while their
    node exists), then the nodes."""
    made = []

    def add(first, count=1, cpu="4", memory="16Gi", labels=None, taint=None):
        names = [f"kwok-node-{i}" for i in range(first, first + count)]
        for name in names:
            kubectl("delete", "node", name, "--ignore-not-found", check=False)
        cluster("add-nodes", "--count", str(count), "--first", str(first), "--node-cpu", cpu,
                "--node-memory", memory)
        made.extend(names)
        for name in names:
            if labels:
                kubectl("label", "node", name, "--overwrite", *[f"{k}={v}" for k, v in labels.items()])
            if taint:
                kubectl("taint", "node", name, taint, "--overwrite")
        wait_until(lambda: all(node_ready(n) for n in names), 60, what=f"nodes {names} Ready")
        return names
    yield add
    kubectl("delete", "pods", "--all", "-n", namespace, "--timeout=60s", check=False, timeout=90)
    for name in made:
        kubectl("delete", "node", name, "--ignore-not-found", "--wait=false", check=False)


@pytest.fixture
def scheduler(operator):
    """nimbus-operator running only the scheduler; more args (e.g. --scheduler-workers=1) may be given."""
    def start(*args):
        return operator("--controllers=scheduler", *args)
    return start


# ---------------------------------------------------------------- pods

def pod_doc(ns, name, cpu="100m", memory="128Mi", scheduler_name=SCHED, **spec):
    s = {"schedulerName": scheduler_name,
         "containers": [{"name": "c", "image": "busybox",
                         "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}
    s.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": s}


def create(*docs):
    kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(docs)}))


def pods_by_name(ns):
    return {p["metadata"]["name"]: p for p in kubectl_json("get", "pods", "-n", ns)["items"]}


def node_of(ns, name):
    out = kubectl("get", "pod", name, "-n", ns, "-o", "jsonpath={.spec.nodeName}", check=False)
    return out.stdout.strip() if out.returncode == 0 else ""


def wait_bound(ns, names, timeout=30):
    """Wait until every pod in names has a node; returns {name: node}."""
    def bound():
        got = {n: (p["spec"].get("nodeName") or "") for n, p in pods_by_name(ns).items() if n in names}
        return got if len(got) == len(names) and all(got.values()) else None
    return wait_until(bound, timeout, interval=0.2, what=f"pods {sorted(names)} bound")


def events(ns, pod, reason):
    items = kubectl_json("get", "events", "-n", ns, "--field-selector",
                         f"involvedObject.name={pod},reason={reason}")["items"]
    return [e["message"] for e in sorted(items, key=lambda e: e["metadata"]["creationTimestamp"])]


def sched_lines(op, msg=None, pod=None):
    return [ln for ln in op.lines() if ln.get("logger") == "scheduler"
            and (msg is None or ln.get("msg") == msg) and (pod is None or ln.get("pod") == pod)]


def assert_no_scheduler_errors(op):
    bad = [ln for ln in op.lines() if ln.get("level") == "error"
           or (ln.get("logger") == "scheduler" and ln.get("level") == "warn"
               and "metrics.k8s.io" not in ln.get("msg", ""))]
    assert not bad, f"unexpected errors or warnings: {bad}"


# ---------------------------------------------------------------- tests

def test_bare_pods_land_on_kwok_nodes(scheduler, namespace):
    op = scheduler()
    names = [f"web-{i}" for i in range(3)]
    t0 = time.monotonic()
    create(*[pod_doc(namespace, n) for n in names])
    placed = wait_bound(namespace, names, timeout=15)
    assert time.monotonic() - t0 < 10
    kwok = {n["metadata"]["name"] for n in kubectl_json("get", "nodes", "-l", "type=kwok")["items"]}
    assert set(placed.values()) <= kwok
    for name, node in placed.items():
        msgs = wait_until(lambda: events(namespace, name, "Scheduled"), 10, what=f"Scheduled event of {name}")
        assert len(msgs) == 1
        assert re.fullmatch(rf"Successfully assigned {namespace}/{name} to {node} \(score \d+\)", msgs[0]), msgs
    # kwok runs the pods once bound.
    wait_until(lambda: all(p["status"].get("phase") == "Running" for p in pods_by_name(namespace).values()),
               30, what="pods Running")
    # Pods for another scheduler are not ours.
    create(pod_doc(namespace, "theirs", scheduler_name="some-other-scheduler"))
    time.sleep(2)
    assert node_of(namespace, "theirs") == ""
    assert not events(namespace, "theirs", "FailedScheduling")
    assert_no_scheduler_errors(op)


def test_bin_packing_fills_one_node_before_the_next(scheduler, namespace, nodes):
    """Ten 1-cpu pods created at once onto two empty 4-cpu nodes: the first node
    (by name, on a tie) is filled, then the second, and the last two wait — the
    assume cache keeps the concurrent workers from placing two pods into the
    same free room."""
    tag = namespace
    a, b = nodes(100, 2, cpu="4", labels={"nimbus-test": tag})
    op = scheduler("--scheduler-workers=4")
    sel = {"nodeSelector": {"nimbus-test": tag}}
    first = [f"p{i}" for i in range(6)]
    create(*[pod_doc(namespace, n, cpu="1", memory="1Gi", **sel) for n in first])
    placed = wait_bound(namespace, first)
    counts = {a: 0, b: 0}
    for node in placed.values():
        counts[node] += 1
    # Which node fills first depends on their live usage when both are empty.
    assert sorted(counts.values()) == [2, 4], placed

    more = [f"q{i}" for i in range(4)]
    create(*[pod_doc(namespace, n, cpu="1", memory="1Gi", **sel) for n in more])
    wait_until(lambda: sum(1 for p in pods_by_name(namespace).values() if p["spec"].get("nodeName")) == 8, 20,
               what="8 pods bound")
    # The two that do not fit stay Pending, with the reason.
    time.sleep(1)
    pending = [n for n, p in pods_by_name(namespace).items() if not p["spec"].get("nodeName")]
    assert len(pending) == 2
    for name in pending:
        msgs = wait_until(lambda: events(namespace, name, "FailedScheduling"), 10, what="FailedScheduling")
        assert "2 Insufficient cpu" in msgs[-1], msgs
    by_node = {a: 0, b: 0}
    for p in pods_by_name(namespace).values():
        if p["spec"].get("nodeName"):
            by_node[p["spec"]["nodeName"]] += 1
    assert by_node == {a: 4, b: 4}
    assert_no_overcommit()
    # Room made by a deletion goes to a parked pod at once, not on a timer.
    kubectl("delete", "pod", "p0", "-n", namespace, "--wait=true", "--timeout=30s")
    wait_until(lambda: sum(1 for p in pods_by_name(namespace).values() if p["spec"].get("nodeName")) == 8, 15,
               what="a parked pod placed in the freed room")
    assert_no_scheduler_errors(op)


def affinity(*terms):
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def test_taints_selectors_and_affinity(scheduler, namespace, nodes):
    tag = namespace
    (gold,) = nodes(110, 1, labels={"nimbus-test": tag, "tier": "gold", "cores": "32"},
                    taint=f"dedicated={tag}:NoSchedule")
    (silver,) = nodes(111, 1, labels={"nimbus-test": tag, "tier": "silver", "cores": "8"})
    (bronze,) = nodes(112, 1, labels={"nimbus-test": tag, "tier": "bronze", "cores": "2"})
    op = scheduler()
    sel = {"nimbus-test": tag}
    tolerate = [{"key": "dedicated", "operator": "Equal", "value": tag, "effect": "NoSchedule"}]
    expr = lambda key, op_, *values: {"key": key, "operator": op_, **({"values": list(values)} if values else {})}
    want = {
        "tolerant": (dict(nodeSelector=sel, tolerations=tolerate,
                          affinity=affinity({"matchExpressions": [expr("tier", "In", "gold")]})), gold),
        "selector": (dict(nodeSelector={**sel, "tier": "silver"}), silver),
        "gt": (dict(nodeSelector=sel, affinity=affinity({"matchExpressions": [expr("cores", "Gt", "4")]})), silver),
        "lt": (dict(nodeSelector=sel, tolerations=tolerate,
                    affinity=affinity({"matchExpressions": [expr("cores", "Lt", "4")]})), bronze),
        # Not silver, and gold is tainted: bronze.
        "notin": (dict(nodeSelector=sel, affinity=affinity({"matchExpressions": [expr("tier", "NotIn", "silver")]})),
                  bronze),
        "exists": (dict(nodeSelector=sel, tolerations=tolerate,
                        affinity=affinity({"matchExpressions": [expr("tier", "Exists"),
                                                                 expr("cores", "Gt", "16")]})), gold),
        "fields": (dict(affinity=affinity({"matchFields": [expr("metadata.name", "In", bronze)]})), bronze),
        # Terms are ORed: the first matches nothing.
        "or": (dict(affinity=affinity({"matchExpressions": [expr("tier", "In", "platinum")]},
                                      {"matchExpressions": [expr("tier", "In", "silver"), expr("nimbus-test", "In", tag)]})),
               silver),
    }
    create(*[pod_doc(namespace, name, **spec) for name, (spec, _) in want.items()])
    # Without the toleration, gold is out; no other node matches.
    create(pod_doc(namespace, "untolerated", nodeSelector=sel,
                   affinity=affinity({"matchExpressions": [expr("tier", "In", "gold")]})))
    placed = wait_bound(namespace, list(want))
    assert placed == {name: node for name, (_, node) in want.items()}
    msgs = wait_until(lambda: events(namespace, "untolerated", "FailedScheduling"), 10, what="FailedScheduling")
    assert f"1 node(s) had untolerated taint {{dedicated: {tag}}}" in msgs[-1], msgs
    assert "node(s) didn't match Pod's node affinity/selector" in msgs[-1], msgs
    assert re.match(r"0/\d+ nodes are available: ", msgs[-1]), msgs
    assert node_of(namespace, "untolerated") == ""
    # Removing the taint is a node change: the parked pod is retried and placed.
    kubectl("taint", "node", gold, "dedicated-")
    assert wait_bound(namespace, ["untolerated"]) == {"untolerated": gold}
    # A cordoned node is filtered out.
    kubectl("cordon", bronze)
    create(pod_doc(namespace, "to-bronze", affinity=affinity({"matchFields": [expr("metadata.name", "In", bronze)]})))
    msgs = wait_until(lambda: events(namespace, "to-bronze", "FailedScheduling"), 10, what="FailedScheduling")
    assert "1 node(s) were unschedulable" in msgs[-1], msgs
    kubectl("uncordon", bronze)
    assert wait_bound(namespace, ["to-bronze"]) == {"to-bronze": bronze}
    assert_no_scheduler_errors(op)


def test_too_big_pod_waits_for_a_big_enough_node(scheduler, namespace, nodes):
    op = scheduler("--log-level=debug")
    create(pod_doc(namespace, "huge", cpu="48", memory="1Gi"))
    msgs = wait_until(lambda: events(namespace, "huge", "FailedScheduling"), 10, what="FailedScheduling")
    assert re.fullmatch(r"0/\d+ nodes are available: (\d+) Insufficient cpu\.", msgs[0]), msgs
    # Parked, not retried on a timer: no attempt at all while nothing changes
    # (the debug line is written for each attempt that repeats the message).
    attempts = lambda: len(sched_lines(op, pod=f"{namespace}/huge"))
    time.sleep(1)
    before = attempts()
    time.sleep(4)
    assert attempts() == before, sched_lines(op, pod=f"{namespace}/huge")
    assert node_of(namespace, "huge") == ""
    assert len(events(namespace, "huge", "FailedScheduling")) == 1
    (big,) = nodes(120, 1, cpu="64")
    assert wait_bound(namespace, ["huge"], timeout=20) == {"huge": big}
    msgs = wait_until(lambda: events(namespace, "huge", "Scheduled"), 10, what="Scheduled event")
    assert msgs[0].startswith(f"Successfully assigned {namespace}/huge to {big} (score ")
    # An event only when the message changes: the new node was first not
    # ready, then carried the not-ready taint for a moment; never a repeat.
    failed = events(namespace, "huge", "FailedScheduling")
    assert len(failed) == len(set(failed)), failed
    assert_no_scheduler_errors(op)


def test_restart_with_pending_pods_loses_none(scheduler, namespace, nodes):
    tag = namespace
    pcs = []
    for prio in (10, 20, 30):
        name = f"{tag}-p{prio}"
        kubectl("create", "-f", "-", input=json.dumps({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": prio}))
        pcs.append(name)
    try:
        op = scheduler()
        create(*[pod_doc(namespace, f"before-{i}") for i in range(3)])
        wait_bound(namespace, [f"before-{i}" for i in range(3)])
        # Parked pods: they need a node labelled restart=<tag>, which comes later.
        parked = [f"parked-{i}" for i in range(2)]
        create(*[pod_doc(namespace, n, nodeSelector={"restart": tag}) for n in parked])
        wait_until(lambda: all(events(namespace, n, "FailedScheduling") for n in parked), 10,
                   what="parked pods' FailedScheduling")
        op.stop()

        # While the scheduler is down: pods of rising priority, created lowest first.
        down = [f"down-{prio}" for prio in (10, 20, 30)]
        create(*[pod_doc(namespace, f"down-{prio}", priorityClassName=f"{tag}-p{prio}") for prio in (10, 20, 30)])
        time.sleep(1)
        assert all(not node_of(namespace, n) for n in down)

        # One worker, so the log shows the order in which they were served:
        # highest priority first.
        op2 = scheduler("--scheduler-workers=1")
        wait_bound(namespace, down)
        order = [ln["pod"] for ln in sched_lines(op2, "pod scheduled") if ln["pod"].split("/")[1] in down]
        assert order == [f"{namespace}/down-30", f"{namespace}/down-20", f"{namespace}/down-10"], order
        # The parked pods were parked again at start, and a matching node releases them.
        (node,) = nodes(130, 1, labels={"restart": tag})
        assert wait_bound(namespace, parked) == {n: node for n in parked}
        everyone = pods_by_name(namespace)
        assert len(everyone) == 8 and all(p["spec"].get("nodeName") for p in everyone.values())
        assert_no_scheduler_errors(op2)
    finally:
        for name in pcs:
            kubectl("delete", "priorityclass", name, "--ignore-not-found", check=False)


def test_deleted_pending_pod_is_forgotten(scheduler, namespace):
    op = scheduler()
    create(pod_doc(namespace, "gone", cpu="100"))
    wait_until(lambda: events(namespace, "gone", "FailedScheduling"), 10, what="FailedScheduling")
    kubectl("delete", "pod", "gone", "-n", namespace, "--wait=true", "--timeout=30s")
    # The scheduler goes on with other pods.
    create(pod_doc(namespace, "next"))
    wait_bound(namespace, ["next"])
    assert_no_scheduler_errors(op)
