#!/usr/bin/env python3
"""Measurements of hack/bench/billing (see its header for the method).

Runs against the cluster and PostgreSQL that hack/bench/billing brought up
(DB_* in the environment); starts nimbus-operator --controllers=billing
itself and stops it at the end. Talks to the apiserver with the admin client
certificate; the HTTP client and process helpers are informer_bench.py's.
Prints the result table on stdout. Only the standard library is used.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from informer_bench import Api, BenchError, curl_base, log, loadavg, stop
from reconcile_bench import cpu_seconds

METRICS_PATH = "/apis/metrics.k8s.io/v1beta1/pods"
GOAL = 0.10                   # a pass takes less than this share of the period
FLOOR_RUNS = 3


def tenant_id(t):
    return f"bb-{t:03d}"


def namespace(t):
    return f"nimbus-{tenant_id(t)}"


def pod_manifest(t, i, n, nodes):
    """Pod i of tenant t: bound to a kwok node by name (no scheduler), with a known usage."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": f"w-{i:04d}", "namespace": namespace(t),
            "labels": {"app": "bench"},
            "annotations": {"kwok.x-k8s.io/usage-cpu": f"{25 * (1 + n % 8)}m",
                            "kwok.x-k8s.io/usage-memory": f"{32 * (1 + n % 4)}Mi"},
        },
        "spec": {
            "nodeName": f"kwok-node-{n % nodes}",
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False,
            "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}],
        },
    }


def parallel(fn, items, workers, what):
    done = [0]
    lock = threading.Lock()
    step = max(1, len(items) // 5)

    def one(x):
        fn(x)
        with lock:
            done[0] += 1
            if done[0] % step == 0:
                log(f"  {what}: {done[0]}/{len(items)}")

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as ex:
        for f in [ex.submit(one, x) for x in items]:
            f.result()
    log(f"{what}: {len(items)} in {time.monotonic() - t0:.0f}s")


def wait_nodes(api, nodes, timeout_s):
    deadline = time.monotonic() + timeout_s
    while True:
        items = api.expect("GET", "/api/v1/nodes")["items"]
        ready = sum(1 for n in items for c in n.get("status", {}).get("conditions", [])
                    if c["type"] == "Ready" and c["status"] == "True")
        if ready >= nodes:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"{ready} of {nodes} kwok nodes Ready after {timeout_s}s")
        time.sleep(2)


def create_tenants(api, tenants):
    def one(t):
        status, data = api.request("POST", "/api/v1/namespaces", {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace(t), "labels": {"nimbus.io/tenant": tenant_id(t)}}})
        if status not in (201, 409):
            raise BenchError(f"creating namespace {namespace(t)}: HTTP {status}: {data[:300]!r}")
    parallel(one, list(range(tenants)), 16, "tenant namespaces")
    # Pods are refused until kube-controller-manager made each namespace's default ServiceAccount.
    deadline = time.monotonic() + 180
    while True:
        items = api.expect("GET", "/api/v1/serviceaccounts?fieldSelector=metadata.name%3Ddefault")["items"]
        have = sum(1 for sa in items if sa["metadata"]["namespace"].startswith("nimbus-bb-"))
        if have >= tenants:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"only {have} of {tenants} default ServiceAccounts after 180s")
        time.sleep(1)


def create_pods(api, tenants, pods, nodes):
    per = pods // tenants
    specs = [(t, i, t * per + i) for t in range(tenants) for i in range(per)]

    def one(spec):
        t, i, n = spec
        status, data = api.request("POST", f"/api/v1/namespaces/{namespace(t)}/pods", pod_manifest(t, i, n, nodes))
        if status not in (201, 409):
            raise BenchError(f"creating pod {i} of {namespace(t)}: HTTP {status}: {data[:300]!r}")
    parallel(one, specs, 16, "pods")
    return len(specs)


def wait_metrics(api, pods, timeout_s):
    """Until metrics-server serves a sample of every pod of the tenants."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, data = api.request("GET", METRICS_PATH)
        have = 0
        if status == 200:
            have = sum(1 for m in json.loads(data)["items"] if m["metadata"]["namespace"].startswith("nimbus-bb-"))
        if have >= pods:
            log(f"metrics-server serves all {pods} pods")
            return
        if time.monotonic() > deadline:
            raise BenchError(f"metrics-server serves {have} of {pods} pods after {timeout_s}s (HTTP {status})")
        log(f"  metrics-server serves {have}/{pods} pods")
        time.sleep(5)


def fetch_floor(args):
    """Seconds for curl to GET the pod metrics list (median of FLOOR_RUNS), and its size.

    From the end of the TLS handshake to the last byte: the operator keeps its
    connection, so neither a process start nor a handshake is part of its fetch."""
    times, size = [], 0
    for _ in range(FLOOR_RUNS):
        out = subprocess.run(curl_base(args) + ["-o", "/dev/null", "-w",
                                                "%{time_total} %{time_appconnect} %{size_download}",
                                                f"{args.server}{METRICS_PATH}"],
                             capture_output=True, text=True, check=True, timeout=120).stdout.split()
        times.append(float(out[0]) - float(out[1]))
        size = int(out[2])
    return statistics.median(times), size


def postgres_pids(port):
    """The PostgreSQL processes listening on port: the postmaster (by its -p flag) and its children."""
    master = None
    procs = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        procs[int(pid)] = ppid
        if cmd and cmd[0].endswith(b"postgres") and b"-p" in cmd and str(port).encode() in cmd:
            master = int(pid)
    if master is None:
        raise BenchError(f"no postgres process with -p {port}")
    return master, [p for p, pp in procs.items() if pp == master]


def postgres_cpu(port):
    """CPU seconds of the instance: the postmaster with its reaped children, and the live children."""
    master, children = postgres_pids(port)
    with open(f"/proc/{master}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    total = sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    for c in children:
        try:
            total += cpu_seconds(c)
        except OSError:
            pass
    return total


def passes(log_path):
    """The "billing pass" lines of the operator's log, as dicts of numbers."""
    out = []
    with open(log_path, "rb") as f:
        for line in f:
            if b'"billing pass"' in line:
                d = json.loads(line)
                out.append({k: float(d[k]) for k in ("pods", "rows", "rows_written", "rows_buffered", "fetch_ms",
                                                     "attribute_ms", "write_ms", "duration_ms", "cpu_ms")})
    return out


def psql(args, sql):
    return subprocess.run([args.psql, "psql", "--port", str(args.pg_port), "-tAc", sql], capture_output=True,
                          text=True, check=True, timeout=60).stdout.strip()


def run_operator(args, want):
    """Run the operator until `want` passes; returns (passes, PostgreSQL CPU per pass, operator CPU s, log)."""
    log_path = os.path.join(args.workdir, "operator.log")
    env = dict(os.environ)
    op = subprocess.Popen([args.operator, "--controllers=billing", f"--billing-period={args.period}s",
                           f"--metrics-bind-address=127.0.0.1:{args.metrics_port}", "--health-probe-bind-address=0",
                           "--api-bind-address=0", "--kubeconfig", args.kubeconfig],
                          stdout=open(log_path, "ab"), stderr=subprocess.STDOUT, env=env)
    pg_cpu, seen = [], 0
    pg_last = postgres_cpu(args.pg_port)
    deadline = time.monotonic() + 120 + want * args.period * 1.5
    try:
        while seen < want:
            if op.poll() is not None:
                raise BenchError(f"nimbus-operator exited ({op.returncode}); see {log_path}")
            if time.monotonic() > deadline:
                raise BenchError(f"only {seen} of {want} billing passes; see {log_path}")
            time.sleep(0.2)
            n = len(passes(log_path))
            if n > seen:
                # Between two pass lines PostgreSQL does little but that pass's write.
                now = postgres_cpu(args.pg_port)
                pg_cpu.append(now - pg_last)
                pg_last = now
                seen = n
                p = passes(log_path)[-1]
                log(f"  pass {n}: {p['pods']:.0f} pods, {p['rows_written']:.0f} rows written, "
                    f"{p['duration_ms']:.0f} ms (fetch {p['fetch_ms']:.0f}, attribute {p['attribute_ms']:.0f}, "
                    f"write {p['write_ms']:.0f}), CPU {p['cpu_ms']:.0f} ms")
        op_cpu = cpu_seconds(op.pid)
    finally:
        stop(op)
    return passes(log_path)[:want], pg_cpu[:want], op_cpu, log_path


def pct(x):
    return f"{100 * x:.2f} %"


def secs(ms):
    return f"{ms / 1000:.3f} s"


def print_table(rows):
    head = ("measure", "value", "peer / period", "ratio", "goal", "result")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(v.ljust(widths[i]) for i, v in enumerate(r)).rstrip())


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    for a in ("server", "ca", "cert", "key", "kubeconfig", "operator", "workdir", "psql"):
        ap.add_argument(f"--{a}", required=True)
    ap.add_argument("--metrics-port", type=int, required=True)
    ap.add_argument("--pg-port", type=int, required=True)
    ap.add_argument("--tenants", type=int, default=500)
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--nodes", type=int, required=True, help="kwok nodes kwok-node-0..N-1 of the cluster")
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--period", type=int, default=30)
    args = ap.parse_args()

    api = Api(args.server, args.ca, args.cert, args.key)
    load_start = loadavg()
    wait_nodes(api, args.nodes, 300)
    create_tenants(api, args.tenants)
    pods = create_pods(api, args.tenants, args.pods, args.nodes)
    # kwok turns about 10 pods a second Running on a loaded 2-core machine.
    wait_metrics(api, pods, max(600, pods // 4))
    floor_s, floor_bytes = fetch_floor(args)
    log(f"floor: curl GET {METRICS_PATH}: {floor_s:.3f} s for {floor_bytes} bytes")

    log(f"nimbus-operator --controllers=billing --billing-period={args.period}s: 1 + {args.passes} passes")
    got, pg_cpu, op_cpu, log_path = run_operator(args, 1 + args.passes)
    first, steady, steady_pg = got[0], got[1:], pg_cpu[1:]
    for p in got:
        if p["pods"] < pods or p["rows_buffered"] != 0:
            raise BenchError(f"a pass saw {p['pods']:.0f} of {pods} pods or left {p['rows_buffered']:.0f} rows "
                             f"unwritten; see {log_path}")
    rows_db = int(psql(args, "SELECT count(*) FROM billing_usage"))
    tenants_db = int(psql(args, "SELECT count(DISTINCT tenant_id) FROM billing_usage"))
    written = int(sum(p["rows_written"] for p in got))
    if rows_db != written or tenants_db != args.tenants:
        raise BenchError(f"the database holds {rows_db} rows of {tenants_db} tenants; the passes wrote "
                         f"{written} rows of {args.tenants} tenants")

    period_ms = args.period * 1000

    def med(key):
        return statistics.median(p[key] for p in steady)

    dur_med, dur_max = med("duration_ms"), max(p["duration_ms"] for p in steady)
    rows_med = med("rows_written")
    rate = statistics.median(p["rows_written"] / (p["write_ms"] / 1000) for p in steady if p["write_ms"] > 0)
    period = f"{args.period} s"
    rows = [
        (f"steady pass, wall time (median of {len(steady)})", secs(dur_med), period, pct(dur_med / period_ms),
         "< 10 %", "PASS" if dur_med < GOAL * period_ms else "MISS"),
        ("steady pass, wall time (worst)", secs(dur_max), period, pct(dur_max / period_ms), "< 10 %",
         "PASS" if dur_max < GOAL * period_ms else "MISS"),
        ("  fetch: metrics.k8s.io LIST + parse (median)", secs(med("fetch_ms")), f"curl GET {floor_s:.3f} s",
         f"{med('fetch_ms') / 1000 / floor_s:.2f}x", "-", "-"),
        ("  attribute: tenants + trapezoid (median)", secs(med("attribute_ms")), period,
         pct(med("attribute_ms") / period_ms), "-", "-"),
        ("  write: PostgreSQL, set-based (median)", secs(med("write_ms")), period, pct(med("write_ms") / period_ms),
         "-", "-"),
        ("steady pass, sampler thread CPU (median)", secs(med("cpu_ms")), period, pct(med("cpu_ms") / period_ms),
         "-", "-"),
        ("steady pass, PostgreSQL CPU (median)", f"{statistics.median(steady_pg):.3f} s", period,
         pct(statistics.median(steady_pg) / period_ms * 1000), "-", "-"),
        ("rows written per steady pass (median)", f"{rows_med:.0f}", "-", "-", "-", "-"),
        ("rows written per second of write phase (median)", f"{rate:,.0f}/s", "-", "-", "-", "-"),
        (f"first pass ({first['rows_written']:.0f} rows: pods new, billed from the epoch on), wall time",
         secs(first["duration_ms"]), period,
         pct(first["duration_ms"] / period_ms), "-", "-"),
    ]
    print()
    print(f"hack/bench/billing: {args.tenants} tenants, {pods} running pods on {args.nodes} kwok nodes, "
          f"--billing-period={args.period}s, {len(steady)} steady passes; {os.cpu_count()} CPUs, load average "
          f"{load_start} at the start, {loadavg()} at the end")
    print_table(rows)
    print()
    print(f"database: {rows_db} usage rows of {tenants_db} tenants, as many as the passes wrote; operator CPU "
          f"over the run (start, cache sync, {len(got)} passes): {op_cpu:.2f} s; metrics list {floor_bytes} bytes")
    sys.stdout.flush()


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(1)
