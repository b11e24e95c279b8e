#!/usr/bin/env python3
"""Measurements of hack/bench/informer (see its header for the methods).

Runs against a cluster that hack/bench/informer brought up; talks to the
apiserver with the admin client certificate of the cluster's run dir. Creates
its pods in one namespace, prints the result table on stdout, and deletes the
namespace again. Only the standard library is used.
"""
import argparse
import http.client
import json
import math
import os
import re
import selectors
import signal
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

NAMESPACE = "nimbus-bench-informer"
SCHEDULER = "nimbus-bench-unserved"  # served by no scheduler: the pods stay Pending
PAGE = 500                           # the C informer's default LIST page size
SETTLE_S = 2.0                       # pause between "synced" and reading VmRSS
LATENCY_WARMUP = 10                  # updates sent before the timed ones
SYNC_RUNS = 5                        # timed sync runs of each side, after one warm-up run
MEMORY_RUNS = 3                      # VmRSS readings of each program, per cluster state


def log(msg):
    print(time.strftime("%H:%M:%S") + " [bench] " + msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


class Api:
    """HTTPS to the apiserver with the admin client cert; one kept-alive connection per thread."""

    def __init__(self, server, ca, cert, key):
        u = urllib.parse.urlsplit(server)
        self.host, self.port = u.hostname, u.port
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ctx.load_cert_chain(cert, key)
        self.local = threading.local()

    def request(self, method, path, body=None, content_type="application/json"):
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        for attempt in (0, 1):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=60)
                self.local.conn = conn
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                return resp.status, resp.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                self.local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def expect(self, method, path, body=None, content_type="application/json", ok=(200, 201)):
        status, data = self.request(method, path, body, content_type)
        if status not in ok:
            raise BenchError(f"{method} {path}: HTTP {status}: {data[:300].decode(errors='replace')}")
        return json.loads(data) if data else None


# ---------------------------------------------------------------- pods

def pod_manifest(i):
    """A typical small workload pod; the apiserver adds the service-account volume and tolerations."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": f"bench-{i:06d}", "namespace": NAMESPACE,
            "labels": {"app": "bench", "tier": "web", "bench.nimbus.io/shard": str(i % 16)},
            "annotations": {"bench.nimbus.io/created-by": "hack-bench-informer"},
        },
        "spec": {
            "schedulerName": SCHEDULER,
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "app", "image": "registry.k8s.io/pause:3.10",
                "ports": [{"name": "http", "containerPort": 8080}],
                "env": [{"name": "MODE", "value": "bench"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                              "limits": {"cpu": "500m", "memory": "256Mi"}},
            }],
        },
    }


def create_namespace(api):
    api.expect("POST", "/api/v1/namespaces",
               {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    # The ServiceAccount admission plugin rejects pods until the namespace's
    # default ServiceAccount exists (kube-controller-manager creates it).
    deadline = time.monotonic() + 60
    while api.request("GET", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/default")[0] != 200:
        if time.monotonic() > deadline:
            raise BenchError(f"no default ServiceAccount in {NAMESPACE} after 60s")
        time.sleep(0.2)


def create_pods(api, n, workers):
    start = time.monotonic()
    done = [0]
    lock = threading.Lock()

    def one(i):
        status, data = api.request("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", pod_manifest(i))
        # 409: a retried POST whose first attempt had created the pod.
        if status not in (201, 409):
            raise BenchError(f"creating pod {i}: HTTP {status}: {data[:300].decode(errors='replace')}")
        with lock:
            done[0] += 1
            if done[0] % 2000 == 0:
                log(f"  {done[0]}/{n} pods")

    with ThreadPoolExecutor(max_workers=workers) as ex:
        for f in [ex.submit(one, i) for i in range(n)]:
            f.result()
    secs = time.monotonic() - start
    log(f"created {n} pods in {secs:.1f}s ({n / secs:.0f}/s)")


def delete_namespace(api, timeout_s):
    status, _ = api.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}")
    if status == 404:
        return
    start = time.monotonic()
    while api.request("GET", f"/api/v1/namespaces/{NAMESPACE}")[0] != 404:
        if time.monotonic() - start > timeout_s:
            log(f"namespace {NAMESPACE} still terminating after {timeout_s}s; the cluster goes down anyway")
            return
        time.sleep(1)
    log(f"deleted namespace {NAMESPACE} in {time.monotonic() - start:.0f}s")


# ---------------------------------------------------------------- processes

def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise BenchError(f"no VmRSS for pid {pid}")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def spawn(cmd, stderr_path):
    """Start cmd with its stdout on a pipe and its stderr appended to stderr_path."""
    with open(stderr_path, "ab") as err:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)


def file_has(path, needle):
    with open(path, "rb") as f:
        return needle in f.read()


def start_until_synced(cmd, stderr_path, timeout_s):
    """Start cmd; returns (proc, seconds from start to its {"synced":true,...} line, objects)."""
    t0 = time.monotonic()
    proc = spawn(cmd, stderr_path)
    timer = threading.Timer(timeout_s, proc.kill)
    timer.start()
    try:
        for line in proc.stdout:
            secs = time.monotonic() - t0
            msg = json.loads(line) if line.startswith(b"{") else {}
            if msg.get("synced") is True:
                return proc, secs, msg["objects"]
    finally:
        timer.cancel()
    stop(proc)
    raise BenchError(f"{os.path.basename(cmd[0])} exited (status {proc.returncode}) or timed out "
                     f"before its synced line; see {stderr_path}")


# ---------------------------------------------------------------- 1. initial sync

def curl_base(args):
    # The apiserver pretty-prints JSON for a User-Agent starting with "curl";
    # any other name gets the compact encoding the C client gets.
    return ["curl", "-sS", "--fail", "--http2", "--compressed", "-H", "Accept: application/json",
            "-A", "nimbus-bench-floor", "--cacert", args.ca, "--cert", args.cert, "--key", args.key]


def curl_paged_list(args, workdir):
    """The raw floor: curl fetches every page of /api/v1/pods?limit=500, following continue tokens.

    One curl process per page (the next URL needs the previous page's token),
    so each page after the first pays a process start and a TLS handshake
    that one client keeping its connection does not. The floor counts them
    once: the first curl from its start to its exit, plus for every later page
    curl's own time from the end of its handshake to the end of the transfer
    (%{time_total} - %{time_appconnect}). Returns (floor seconds, wall-clock
    seconds of the whole loop, items); the items are counted afterwards."""
    cont_re = re.compile(rb'"continue":\s*"([^"]*)"')
    pages = []
    t0 = time.monotonic()
    floor = 0.0
    token = ""
    while True:
        page = os.path.join(workdir, f"page-{len(pages)}.json")
        url = f"{args.server}/api/v1/pods?limit={PAGE}"
        if token:
            url += "&continue=" + urllib.parse.quote(token, safe="")
        out = subprocess.run(curl_base(args) + ["-o", page, "-w", "%{time_appconnect} %{time_total}", url],
                             check=True, stdout=subprocess.PIPE).stdout
        if pages:
            appconnect, total = map(float, out.split())
            floor += total - appconnect
        else:
            floor = time.monotonic() - t0
        pages.append(page)
        with open(page, "rb") as f:
            m = cont_re.search(f.read(4096).split(b'"items"', 1)[0])
        token = m.group(1).decode() if m else ""
        if not token:
            break
    wall = time.monotonic() - t0
    items = 0
    for page in pages:
        with open(page) as f:
            items += len(json.load(f)["items"])
        os.unlink(page)
    return floor, wall, items


def measure_sync(args, workdir):
    """Medians over runs: (C seconds, curl floor seconds, curl wall-clock seconds)."""
    c_cmd = [args.informer_watch, "--kind", "Pod", "--exit-after-sync", "--kubeconfig", args.kubeconfig]
    c_times, floors, walls = [], [], []
    for r in range(SYNC_RUNS + 1):  # run 0 warms both up and is not counted
        proc, secs, objs = start_until_synced(c_cmd, os.path.join(workdir, "informer-watch.sync.stderr"), 300)
        proc.wait(30)
        floor, wall, items = curl_paged_list(args, workdir)
        if objs != items:
            raise BenchError(f"the C informer synced {objs} pods but the LIST returned {items}")
        if r:
            c_times.append(secs)
            floors.append(floor)
            walls.append(wall)
        log(f"  sync run {r}{' (warm-up)' if not r else ''}: C informer {secs:.3f}s, "
            f"curl floor {floor:.3f}s (loop wall-clock {wall:.3f}s), {items} pods")
    return statistics.median(c_times), statistics.median(floors), statistics.median(walls)


# ---------------------------------------------------------------- 2. memory

def held_rss(cmd, stderr_path):
    """VmRSS of a process holding its synced cache: (bytes, objects, sync seconds)."""
    proc, secs, objs = start_until_synced(cmd, stderr_path, 300)
    try:
        time.sleep(SETTLE_S)
        if proc.poll() is not None:
            raise BenchError(f"{os.path.basename(cmd[0])} exited after its synced line; see {stderr_path}")
        return rss_bytes(proc.pid), objs, secs
    finally:
        stop(proc)


def memory_programs(args):
    return {
        "c": [args.informer_watch, "--kind", "Pod", "--hold-after-sync", "--kubeconfig", args.kubeconfig],
        "go": [args.peer, "--kubeconfig", args.kubeconfig],
    }


def measure_rss(args, workdir, label):
    """Medians over runs, per program: {"c": (rss bytes, objects, sync seconds), "go": (...)}."""
    out = {}
    for name, cmd in memory_programs(args).items():
        samples = [held_rss(cmd, os.path.join(workdir, f"{name}.memory.stderr")) for _ in range(MEMORY_RUNS)]
        objs = {s[1] for s in samples}
        if len(objs) != 1:
            raise BenchError(f"{name} cached different numbers of objects across runs: {sorted(objs)}")
        out[name] = (statistics.median(s[0] for s in samples), objs.pop(), statistics.median(s[2] for s in samples))
        log(f"  {label}: {name} VmRSS {[s[0] // 1024 for s in samples]} KiB with {samples[0][1]} pods")
    return out


# ---------------------------------------------------------------- 3. watch latency

class LineStream:
    """A child's stdout, split into lines; records when the line carrying each resourceVersion arrived."""

    def __init__(self, name, proc, rv_of):
        self.name, self.rv_of = name, rv_of
        self.fd = proc.stdout.fileno()
        self.buf = b""
        self.seen = {}

    def feed(self, data, now, cond):
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            rv = self.rv_of(line)
            if rv:
                with cond:
                    self.seen[rv] = now
                    cond.notify_all()


def c_event_rv(line):
    ev = json.loads(line)
    return ev["rv"] if ev.get("event") == "MODIFIED" else None


def curl_event_rv(line):
    ev = json.loads(line)
    if ev.get("type") == "ERROR":
        raise BenchError(f"curl watch stream ended with {line[:300]!r}")
    return ev["object"]["metadata"]["resourceVersion"] if ev.get("type") == "MODIFIED" else None


def read_streams(streams, cond, stopped, errors):
    """One thread, one clock reading per wake-up, shared by every stream that is ready then.

    A failure lands in errors (and wakes the waiter) rather than ending the thread silently."""
    sel = selectors.DefaultSelector()
    for s in streams:
        os.set_blocking(s.fd, False)
        sel.register(s.fd, selectors.EVENT_READ, s)
    try:
        while not stopped.is_set() and sel.get_map():
            ready = sel.select(0.2)
            now = time.monotonic_ns()
            for key, _ in ready:
                data = os.read(key.fd, 1 << 20)
                if not data:
                    sel.unregister(key.fd)
                    continue
                key.data.feed(data, now, cond)
    except Exception as e:  # the waiting thread reports it
        with cond:
            errors.append(e)
            cond.notify_all()


def percentile(xs, p):
    s = sorted(xs)
    return s[max(0, math.ceil(p * len(s)) - 1)]


def measure_latency(args, api, workdir, npods, updates):
    sys.setswitchinterval(0.0001)  # the reader thread gets the GIL as soon as a line is there
    stderr_path = os.path.join(workdir, "informer-watch.latency.stderr")
    procs = []
    stopped = threading.Event()
    try:
        rv = api.expect("GET", "/api/v1/pods?limit=1")["metadata"]["resourceVersion"]
        w = spawn(curl_base(args) + [
            "-N", f"{args.server}/api/v1/pods?watch=1&resourceVersion={rv}&timeoutSeconds=3600"],
            os.path.join(workdir, "curl.watch.stderr"))
        procs.append(w)
        c = spawn([args.informer_watch, "--kind", "Pod", "--kubeconfig", args.kubeconfig], stderr_path)
        procs.append(c)
        streams = [LineStream("c", c, c_event_rv), LineStream("curl", w, curl_event_rv)]
        cond = threading.Condition()
        errors = []
        # Read from the start: informer-watch prints an ADDED line per pod while it syncs.
        reader = threading.Thread(target=read_streams, args=(streams, cond, stopped, errors), daemon=True)
        reader.start()
        deadline = time.monotonic() + 300
        while not file_has(stderr_path, b'"msg":"synced"'):
            if c.poll() is not None or w.poll() is not None or errors or time.monotonic() > deadline:
                raise BenchError(f"informer-watch did not sync for the latency run; see {stderr_path}"
                                 f"{f' ({errors[0]})' if errors else ''}")
            time.sleep(0.05)
        lat = {s.name: [] for s in streams}
        for i in range(LATENCY_WARMUP + updates):
            name = f"bench-{i % npods:06d}"
            t0 = time.monotonic_ns()
            obj = api.expect("PATCH", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}",
                             {"metadata": {"labels": {"bench-seq": str(i)}}}, "application/merge-patch+json")
            rv = obj["metadata"]["resourceVersion"]
            with cond:
                if not cond.wait_for(lambda: errors or all(rv in s.seen for s in streams), timeout=10) or errors:
                    missing = [s.name for s in streams if rv not in s.seen]
                    raise BenchError(f"update {i} (rv {rv}) never reached {', '.join(missing)} within 10s"
                                     f"{f' ({errors[0]})' if errors else ''}")
                arrivals = {s.name: s.seen.pop(rv) for s in streams}
            if i >= LATENCY_WARMUP:
                for n, t in arrivals.items():
                    lat[n].append((t - t0) / 1e6)
        return lat
    finally:
        stopped.set()
        for p in procs:
            stop(p)


# ---------------------------------------------------------------- report

def loadavg():
    """The 1-minute load average: other work on the machine skews the timings."""
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def fmt_s(x):
    return f"{x:.3f} s"


def fmt_ms(x):
    return f"{x:.2f} ms"


def fmt_b(x):
    return f"{x / 1024:.2f} KiB" if abs(x) >= 1024 else f"{x:.0f} B"


def row(measure, c, peer, peer_name, ratio, goal, ok):
    return (measure, c, peer, peer_name, "-" if ratio is None else f"{ratio:.3f}x", goal,
            "-" if ok is None else ("PASS" if ok else "MISS"))


def print_table(rows):
    head = ("measure", "C informer", "peer", "peer is", "ratio", "goal", "result")
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
    ap.add_argument("--informer-watch", required=True)
    ap.add_argument("--peer", required=True)
    ap.add_argument("--workdir", required=True, help="for page files and the programs' stderr logs")
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--updates", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=16, help="parallel POSTs when creating pods")
    args = ap.parse_args()

    api = Api(args.server, args.ca, args.cert, args.key)
    load_start = loadavg()
    others = len(api.expect("GET", "/api/v1/pods")["items"])
    if others:
        raise BenchError(f"the cluster already has {others} pods; the benchmark needs an empty one")

    log(f"2. memory baseline: each program's VmRSS after syncing an empty cluster ({MEMORY_RUNS} runs)")
    base = measure_rss(args, args.workdir, "empty cluster")

    log(f"creating {args.pods} Pending pods in namespace {NAMESPACE}")
    create_namespace(api)
    try:
        create_pods(api, args.pods, args.workers)

        log(f"1. initial sync: C informer vs curl paged LIST (limit={PAGE}), {SYNC_RUNS} runs after a warm-up")
        c_sync, curl_sync, curl_wall = measure_sync(args, args.workdir)

        log(f"2. memory: each program's VmRSS after syncing {args.pods} pods ({MEMORY_RUNS} runs)")
        full = measure_rss(args, args.workdir, f"{args.pods} pods")

        log(f"3. watch latency: {args.updates} label PATCHes, each awaited by informer-watch and a curl watch")
        lat = measure_latency(args, api, args.workdir, args.pods, args.updates)

        per_pod = {}
        for name in ("c", "go"):
            d_objs = full[name][1] - base[name][1]
            if d_objs != args.pods:
                raise BenchError(f"{name} cached {d_objs} more objects than on the empty cluster, not {args.pods}")
            per_pod[name] = (full[name][0] - base[name][0]) / d_objs
        p = {n: (statistics.median(v), percentile(v, 0.99)) for n, v in lat.items()}

        rows = [
            row(f"initial sync, {args.pods} pods (median of {SYNC_RUNS})", fmt_s(c_sync), fmt_s(curl_sync),
                "curl paged LIST", c_sync / curl_sync, "<= 1.2x", c_sync <= 1.2 * curl_sync),
            row("memory per cached pod (RSS delta / pods)", fmt_b(per_pod["c"]), fmt_b(per_pod["go"]),
                "client-go informer", per_pod["c"] / per_pod["go"], "<= 0.1x", per_pod["c"] <= 0.1 * per_pod["go"]),
            row("memory per cached pod, absolute", fmt_b(per_pod["c"]), "-", "-", None, "<= 1 KiB",
                per_pod["c"] <= 1024),
            row(f"watch latency p50 ({len(lat['c'])} updates)", fmt_ms(p["c"][0]), fmt_ms(p["curl"][0]),
                "curl watch", p["c"][0] / p["curl"][0], "<= 1.1x", p["c"][0] <= 1.1 * p["curl"][0]),
            row(f"watch latency p99 ({len(lat['c'])} updates)", fmt_ms(p["c"][1]), fmt_ms(p["curl"][1]),
                "curl watch", p["c"][1] / p["curl"][1], "<= 1.1x", p["c"][1] <= 1.1 * p["curl"][1]),
            row("(info) sync time in the memory runs", fmt_s(full["c"][2]), fmt_s(full["go"][2]),
                "client-go informer", full["c"][2] / full["go"][2], "-", None),
        ]
        print()
        print(f"hack/bench/informer: {args.pods} pods, {args.updates} updates, apiserver {args.server}, "
              f"{os.cpu_count()} CPUs, load average {load_start} at the start, {loadavg()} at the end")
        print_table(rows)
        print()
        print(f"curl paged LIST, wall-clock of the loop (a process and a TLS handshake per page): {fmt_s(curl_wall)}")
        for name, label in (("c", "C informer-watch"), ("go", "client-go peer")):
            print(f"VmRSS {label}: {base[name][0] / 1048576:.1f} MiB empty, "
                  f"{full[name][0] / 1048576:.1f} MiB with {args.pods} pods")
        print(f"watch latency max: C {fmt_ms(max(lat['c']))}, curl {fmt_ms(max(lat['curl']))}")
        sys.stdout.flush()
    finally:
        delete_namespace(api, 300)


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(1)
