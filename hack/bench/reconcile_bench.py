#!/usr/bin/env python3
"""Measurements of hack/bench/reconcile (see its header for the methods).

Runs against a cluster that hack/bench/reconcile brought up, with the CRD
applied; starts nimbus-operator (--controllers=workload) itself and stops it
at the end. Talks to the apiserver with the admin client certificate; the
HTTP client, process helpers and percentile are those of informer_bench.py.
Prints the result table on stdout. Only the standard library is used.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from informer_bench import Api, BenchError, curl_base, log, loadavg, percentile, rss_bytes, stop

TENANT = "rbench"
TENANT_NS = f"nimbus-{TENANT}"       # what the tenant reconciler would create
FLOOR_NS = "rbench-floor"            # the raw Deployments: no tenant label, the operator ignores it
TEMPLATE_CR = "template-cr"          # its Deployment is the manifest of the raw floor
SCHEDULER = "nimbus-bench-unserved"  # served by no scheduler
SEED_PERIOD_S = 10.0                 # the seed's reconcile loop polls every 10 s
SETTLE_S = 3.0                       # pause between phases, for status writes to die down
QUIET_S = 1.0                        # the operator is idle once its CPU time stands still this long
WAIT_S = 120.0                       # longest wait for the Deployments of one phase


def cr_manifest(name):
    return {"apiVersion": "nimbus.io/v1", "kind": "ComputeRequest",
            "metadata": {"name": name, "namespace": TENANT_NS},
            "spec": {"tenantId": TENANT, "image": "registry.k8s.io/pause:3.10", "cpu": "100m",
                     "memory": "128Mi", "replicas": 0, "schedulerName": SCHEDULER}}


def deployment_name(cr):
    return f"nimbus-{cr}"


class DeploymentWatch:
    """A `curl -N` watch of every Deployment; one reader thread time-stamps each read
    (time.monotonic_ns) and records the first ADDED arrival of each (namespace, name)."""

    def __init__(self, args, api, workdir):
        rv = api.expect("GET", "/apis/apps/v1/deployments?limit=1")["metadata"]["resourceVersion"]
        self.proc = subprocess.Popen(
            curl_base(args) + ["-N", f"{args.server}/apis/apps/v1/deployments?watch=1&resourceVersion={rv}"
                               "&timeoutSeconds=3600"],
            stdout=subprocess.PIPE, stderr=open(os.path.join(workdir, "curl.watch.stderr"), "ab"))
        self.added = {}
        self.error = None
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        buf = b""
        fd = self.proc.stdout.fileno()
        try:
            while True:
                data = os.read(fd, 1 << 20)
                now = time.monotonic_ns()
                if not data:
                    raise BenchError("the deployment watch ended")
                lines = (buf + data).split(b"\n")
                buf = lines.pop()
                added = [k for k in map(self._added_key, lines) if k]
                if added:
                    with self.cond:
                        for k in added:
                            self.added.setdefault(k, now)
                        self.cond.notify_all()
        except Exception as e:  # the waiting thread reports it
            with self.cond:
                self.error = e
                self.cond.notify_all()

    @staticmethod
    def _added_key(line):
        """(namespace, name) of an ADDED event, else None. Only ADDED lines are decoded: a burst
        brings several MODIFIED events per Deployment, and a reader that falls behind the stream
        inflates every latency it stamps (and, once, under a load average of 27, saw the
        apiserver end its watch mid-burst)."""
        if line.startswith(b'{"type":"ERROR"'):
            raise BenchError(f"the deployment watch failed: {line[:300]!r}")
        if not line.startswith(b'{"type":"ADDED"'):
            return None
        m = json.loads(line)["object"]["metadata"]
        return m["namespace"], m["name"]

    def wait(self, keys, what):
        """Arrival times (ns) of keys, once all have arrived."""
        with self.cond:
            ok = self.cond.wait_for(lambda: self.error or all(k in self.added for k in keys), WAIT_S)
            if self.error:
                raise BenchError(str(self.error))
            if not ok:
                missing = [k for k in keys if k not in self.added]
                raise BenchError(f"{what}: {len(missing)} of {len(keys)} Deployments not ADDED after {WAIT_S:.0f}s, "
                                 f"e.g. {missing[0]}")
            return [self.added[k] for k in keys]

    def close(self):
        stop(self.proc)


def cpu_seconds(pid):
    """utime + stime of pid, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pid, timeout_s=60):
    """Wait until pid's CPU time stands still for QUIET_S; returns its CPU seconds then."""
    deadline = time.monotonic() + timeout_s
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(QUIET_S)
        now = cpu_seconds(pid)
        if now == last:
            return now
        last = now
    log(f"the operator was still busy after {timeout_s}s")
    return last


def post_all(api, path, docs, workers, rate):
    """POST docs to path, in parallel (workers) or one at a time at `rate` per second.
    Returns the send time (monotonic ns, taken just before each request) of each doc."""
    sent = [0] * len(docs)

    def one(i):
        sent[i] = time.monotonic_ns()
        status, data = api.request("POST", path, docs[i])
        if status != 201:
            raise BenchError(f"POST {path} ({docs[i]['metadata']['name']}): HTTP {status}: "
                             f"{data[:300].decode(errors='replace')}")

    if rate:
        t0 = time.monotonic()
        for i in range(len(docs)):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            one(i)
    else:
        with ThreadPoolExecutor(max_workers=workers) as ex:
            for f in [ex.submit(one, i) for i in range(len(docs))]:
                f.result()
    return sent


def run_phase(api, watch, path, ns, docs, workers, rate, what):
    """Create docs; returns (per-object latencies in ms, total s from first send to last ADDED)."""
    sent = post_all(api, path, docs, workers, rate)
    keys = [(ns, d["metadata"]["name"] if d["kind"] == "Deployment" else deployment_name(d["metadata"]["name"]))
            for d in docs]
    arrived = watch.wait(keys, what)
    lat = [(a - s) / 1e6 for a, s in zip(arrived, sent)]
    total = (max(arrived) - min(sent)) / 1e9
    log(f"  {what}: p50 {percentile(lat, 0.5):.1f} ms, p99 {percentile(lat, 0.99):.1f} ms, total {total:.3f} s")
    return lat, total


def floor_docs(template, names):
    """Raw Deployments: the operator's Deployment of TEMPLATE_CR, as it was created, renamed per CR."""
    m = template["metadata"]
    base = {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": m["name"], "namespace": FLOOR_NS, "labels": m.get("labels", {}),
                         "annotations": {k: v for k, v in m.get("annotations", {}).items()
                                         if not k.startswith("deployment.kubernetes.io/")}},
            "spec": template["spec"]}
    text = json.dumps(base)
    return [json.loads(text.replace(TEMPLATE_CR, n)) for n in names]


def create_namespace(api, name, labels):
    api.expect("POST", "/api/v1/namespaces",
               {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})


def start_operator(args, log_path):
    out = open(log_path, "ab")
    proc = subprocess.Popen([args.operator, "--controllers=workload", "--metrics-bind-address=0",
                             "--health-probe-bind-address=0", "--api-bind-address=0",
                             "--kubeconfig", args.kubeconfig], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        with open(log_path, "rb") as f:
            if b"reconcilers started" in f.read():
                return proc
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise BenchError(f"nimbus-operator did not start its reconcilers; see {log_path}")
        time.sleep(0.05)


def ms(x):
    return f"{x:.1f} ms" if x < 1000 else f"{x / 1000:.2f} s"


def ratio(a, b):
    return f"{a / b:.2f}x"


def verdict(ok):
    return "PASS" if ok else "MISS"


def print_table(rows):
    head = ("measure", "nimbus-operator", "raw floor", "op/floor", "seed model", "op/seed", "goal", "result")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(v.ljust(widths[i]) for i, v in enumerate(r)).rstrip())


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--server", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--operator", required=True, help="the nimbus-operator binary")
    ap.add_argument("--workdir", required=True, help="for the operator's log and curl's stderr")
    ap.add_argument("--burst", type=int, default=500)
    ap.add_argument("--steady", type=int, default=200)
    ap.add_argument("--rate", type=float, default=20.0, help="steady-state ComputeRequests per second")
    ap.add_argument("--workers", type=int, default=16, help="parallel POSTs in the burst")
    args = ap.parse_args()
    sys.setswitchinterval(0.0001)  # the watch reader gets the GIL as soon as a line is there

    api = Api(args.server, args.ca, args.cert, args.key)
    load_start = loadavg()
    create_namespace(api, TENANT_NS, {"nimbus.io/tenant": TENANT})
    create_namespace(api, FLOOR_NS, {})
    cr_path = f"/apis/nimbus.io/v1/namespaces/{TENANT_NS}/computerequests"
    dep_path = f"/apis/apps/v1/namespaces/{FLOOR_NS}/deployments"

    op = start_operator(args, os.path.join(args.workdir, "operator.log"))
    watch = DeploymentWatch(args, api, args.workdir)
    try:
        log(f"warm-up: one ComputeRequest ({TEMPLATE_CR}); its Deployment is the raw floor's manifest")
        run_phase(api, watch, cr_path, TENANT_NS, [cr_manifest(TEMPLATE_CR)], 1, 0, "warm-up")
        template = api.expect("GET", f"/apis/apps/v1/namespaces/{TENANT_NS}/deployments/{deployment_name(TEMPLATE_CR)}")
        time.sleep(SETTLE_S)

        steady = [f"s-{i:04d}" for i in range(args.steady)]
        log(f"steady state: {args.steady} ComputeRequests one at a time at {args.rate:g}/s")
        op_s, _ = run_phase(api, watch, cr_path, TENANT_NS, [cr_manifest(n) for n in steady], 1, args.rate,
                            "operator, steady")
        time.sleep(SETTLE_S)
        log(f"steady state floor: the same {args.steady} Deployments POSTed directly at {args.rate:g}/s")
        fl_s, _ = run_phase(api, watch, dep_path, FLOOR_NS, floor_docs(template, steady), 1, args.rate,
                            "floor, steady")
        wait_idle(op.pid)

        burst = [f"b-{i:04d}" for i in range(args.burst)]
        log(f"burst: {args.burst} ComputeRequests at once, {args.workers} parallel POSTs")
        rss_before = rss_bytes(op.pid)
        cpu0 = cpu_seconds(op.pid)
        op_b, op_total = run_phase(api, watch, cr_path, TENANT_NS, [cr_manifest(n) for n in burst], args.workers, 0,
                                   "operator, burst")
        cpu_created = cpu_seconds(op.pid) - cpu0
        cpu_idle = wait_idle(op.pid) - cpu0
        rss_after = rss_bytes(op.pid)
        time.sleep(SETTLE_S)
        log(f"burst floor: the same {args.burst} Deployments POSTed directly, {args.workers} in parallel")
        fl_b, fl_total = run_phase(api, watch, dep_path, FLOOR_NS, floor_docs(template, burst), args.workers, 0,
                                   "floor, burst")
    finally:
        watch.close()
        stop(op)

    def pct(xs):
        return percentile(xs, 0.5), percentile(xs, 0.99)

    (os50, os99), (fs50, fs99), (ob50, ob99), (fb50, fb99) = pct(op_s), pct(fl_s), pct(op_b), pct(fl_b)
    poll_ms = SEED_PERIOD_S * 1000  # the seed model, in ms: U(0, poll period) + the floor's create time
    seed = {"s": (0.5 * poll_ms + fs50, 0.99 * poll_ms + fs99), "b": (0.5 * poll_ms + fb50, 0.99 * poll_ms + fb99)}
    rows = [
        (f"steady p50, apply -> Deployment ADDED ({args.steady} @ {args.rate:g}/s)", ms(os50), ms(fs50),
         ratio(os50, fs50), ms(seed["s"][0]), ratio(os50, seed["s"][0]), "-", "-"),
        (f"steady p99, apply -> Deployment ADDED ({args.steady} @ {args.rate:g}/s)", ms(os99), ms(fs99),
         ratio(os99, fs99), ms(seed["s"][1]), ratio(os99, seed["s"][1]), "< 100 ms", verdict(os99 < 100)),
        (f"burst p50, apply -> Deployment ADDED ({args.burst}, {args.workers} parallel)", ms(ob50), ms(fb50),
         ratio(ob50, fb50), ms(seed["b"][0]), ratio(ob50, seed["b"][0]), "-", "-"),
        (f"burst p99, apply -> Deployment ADDED ({args.burst}, {args.workers} parallel)", ms(ob99), ms(fb99),
         ratio(ob99, fb99), ms(seed["b"][1]), ratio(ob99, seed["b"][1]), "-", "-"),
        ("burst total, first POST -> last Deployment ADDED", ms(op_total * 1000), ms(fl_total * 1000),
         ratio(op_total, fl_total), "-", "-", "<= 1.5x floor", verdict(op_total <= 1.5 * fl_total)),
        ("operator CPU over the burst, to the last ADDED", f"{cpu_created:.2f} s", "-", "-", "-", "-", "-", "-"),
        ("operator CPU over the burst, until idle (status writes)", f"{cpu_idle:.2f} s", "-", "-", "-", "-", "-",
         "-"),
        ("operator VmRSS before / after the burst",
         f"{rss_before / 1048576:.1f} / {rss_after / 1048576:.1f} MiB", "-", "-", "-", "-", "-", "-"),
    ]
    print()
    print(f"hack/bench/reconcile: {args.steady} steady + {args.burst} burst ComputeRequests, apiserver {args.server}, "
          f"{os.cpu_count()} CPUs, load average {load_start} at the start, {loadavg()} at the end")
    print_table(rows)
    print()
    print(f"seed model: the seed's loop (Go prototype, not available here) polls every {SEED_PERIOD_S:g} s, so its "
          f"apply -> Deployment latency is U(0, {SEED_PERIOD_S:g} s) plus the floor's create time: p50 = "
          f"{SEED_PERIOD_S / 2:g} s + floor p50, p99 = {SEED_PERIOD_S * 0.99:g} s + floor p99 (computed, not run)")
    print(f"latency max: operator steady {ms(max(op_s))}, burst {ms(max(op_b))}; "
          f"floor steady {ms(max(fl_s))}, burst {ms(max(fl_b))}")
    sys.stdout.flush()


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(1)
