#!/usr/bin/env python3
"""Measurements of hack/bench/scheduler (see its header for the methods).

Runs against a cluster that hack/bench/scheduler brought up; talks to the
apiserver with the admin client certificate of the cluster's run dir. Starts
each peer scheduler itself, one at a time, runs the same workload against it,
prints the result table on stdout and stops the peer again. Only the standard
library is used.

`scheduler_bench.py --watch-child ...` is the pod watcher: a process of its
own (so that the creator threads and the GIL do not delay its clock
readings) that prints one line per first sighting and per first binding.
"""
import argparse
import http.client
import json
import math
import os
import random
import re
import signal
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

NAMESPACE = "nimbus-bench-scheduler"
CPUS = ["100m", "250m", "500m", "1"]
MEMS = ["128Mi", "256Mi", "512Mi", "1Gi"]
CPU_MILLI = {"100m": 100, "250m": 250, "500m": 500, "1": 1000}
MEM_BYTES = {"128Mi": 128 << 20, "256Mi": 256 << 20, "512Mi": 512 << 20, "1Gi": 1 << 30}
STALL_S = 60          # a run ends as timed out when no pod got bound for this long
SEED = 20240611       # the same workload for every peer

PRESETS = {
    # pods: saturating run; deployments x replicas of them come from Deployments,
    # the rest are bare pods. rate runs: (pods/s, pods); every 5th arrival there
    # is a 1-replica Deployment.
    "smoke": {"nodes": 100, "pods": 1000, "deployments": 2, "replicas": 100,
              "rates": [(20, 60), (50, 100)]},
    "full": {"nodes": 1000, "pods": 10000, "deployments": 20, "replicas": 100,
             "rates": [(20, 300), (50, 500)]},
}
PEERS = ["b0", "kube-default", "kube-binpack", "nimbus"]
SCHEDULER_NAME = {"b0": "b0", "kube-default": "kube-default", "kube-binpack": "kube-binpack",
                  "nimbus": "nimbus-scheduler"}


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

    def connect(self, timeout=60):
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)

    def request(self, method, path, body=None, content_type="application/json", accept="application/json"):
        headers = {"Accept": accept}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        for attempt in (0, 1):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.connect()
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

    def expect(self, method, path, body=None, ok=(200, 201, 202)):
        status, data = self.request(method, path, body)
        if status not in ok:
            raise BenchError(f"{method} {path}: HTTP {status}: {data[:300].decode(errors='replace')}")
        return json.loads(data) if data else None


# ---------------------------------------------------------------- the watcher child

EVENT_TYPE = re.compile(rb'"type":"([A-Z]+)"')
FIRST_NAME = re.compile(rb'"name":"([^"]+)"')         # metadata.name comes first in a pod
RESOURCE_VERSION = re.compile(rb'"resourceVersion":"([0-9]+)"')
NODE_NAME = re.compile(rb'"nodeName":"([^"]+)"')      # spec.nodeName (not nominatedNodeName)


def watch_child(args):
    """Watch the namespace's pods; print 'S' once watching, then per pod 'A name t' at its first
    event and 'B name node t' at the first event showing spec.nodeName (t: CLOCK_MONOTONIC ns,
    read when the event's bytes arrived, before they are parsed).

    The apiserver closes a watch whose reader falls behind; the watch then resumes from the last
    resourceVersion seen ('W resumed' is printed), or after a 410 Gone from a fresh LIST, whose
    pods count as seen (and bound) at the time of that LIST ('W relisted')."""
    api = Api(args.server, args.ca, args.cert, args.key)
    out = sys.stdout
    seen, bound = set(), set()
    rv = args.watch_child
    started = False

    def emit(name, node, now):
        lines = []
        if name not in seen:
            seen.add(name)
            lines.append(f"A {name} {now}\n")
        if node and name not in bound:
            bound.add(name)
            lines.append(f"B {name} {node} {now}\n")
        if lines:
            out.write("".join(lines))
            out.flush()

    while True:
        conn = api.connect(timeout=3600)
        conn.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods?watch=1&resourceVersion={rv}"
                            "&allowWatchBookmarks=true&timeoutSeconds=3600", headers={"Accept": "application/json"})
        resp = conn.getresponse()
        gone = resp.status == 410
        if resp.status != 200 and not gone:
            out.write(f"E HTTP {resp.status}: {resp.read(300)!r}\n")
            out.flush()
            return 1
        if not started:
            out.write("S\n")
            out.flush()
            started = True
        buf = b""
        while not gone:
            # read1, not readline: with chunked transfer readline can hand out part of a line.
            try:
                data = resp.read1(1 << 20)
            except (http.client.HTTPException, OSError):
                data = b""
            now = time.monotonic_ns()
            if not data:
                out.write("W resumed\n")
                out.flush()
                break
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                m = EVENT_TYPE.search(line, 0, 40)
                kind = m.group(1) if m else b""
                if kind == b"ERROR":
                    ev = json.loads(line)
                    if ev.get("object", {}).get("code") == 410:
                        gone = True
                        break
                    out.write(f"E {line[:300]!r}\n")
                    out.flush()
                    return 1
                v = RESOURCE_VERSION.search(line)
                if v:
                    rv = v.group(1).decode()
                if kind == b"BOOKMARK":
                    continue
                n = FIRST_NAME.search(line)
                if not n:
                    continue
                node = NODE_NAME.search(line)
                emit(n.group(1).decode(), node.group(1).decode() if node else None, now)
        conn.close()
        if gone:
            status, data = api.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods")
            now = time.monotonic_ns()
            if status != 200:
                out.write(f"E relist: HTTP {status}\n")
                out.flush()
                return 1
            lst = json.loads(data)
            for pod in lst.get("items") or []:
                emit(pod["metadata"]["name"], pod["spec"].get("nodeName"), now)
            rv = lst["metadata"]["resourceVersion"]
            out.write("W relisted\n")
            out.flush()


class Watch:
    """The watcher child, and what it saw: first sighting and binding (node, time) per pod."""

    def __init__(self, args, api):
        rv = api.expect("GET", f"/api/v1/namespaces/{NAMESPACE}/pods?limit=1")["metadata"]["resourceVersion"]
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--watch-child", rv,
                                      "--server", args.server, "--ca", args.ca, "--cert", args.cert,
                                      "--key", args.key], stdout=subprocess.PIPE, text=True)
        self.seen, self.bound = {}, {}
        self.notes = {}  # "resumed"/"relisted" -> times
        self.error = None
        self.cond = threading.Condition()
        self.started = False
        threading.Thread(target=self._read, daemon=True).start()
        with self.cond:
            if not self.cond.wait_for(lambda: self.started or self.error, 30) or self.error:
                self.stop()
                raise BenchError(f"the pod watch did not start: {self.error or 'timeout'}")

    def _read(self):
        for line in self.proc.stdout:
            parts = line.split()
            with self.cond:
                if parts[0] == "S":
                    self.started = True
                elif parts[0] == "A":
                    self.seen[parts[1]] = int(parts[2]) / 1e9
                elif parts[0] == "B":
                    self.bound[parts[1]] = (parts[2], int(parts[3]) / 1e9)
                elif parts[0] == "W":
                    self.notes[parts[1]] = self.notes.get(parts[1], 0) + 1
                else:
                    self.error = line.strip()
                self.cond.notify_all()
        with self.cond:
            self.error = self.error or "the watcher exited"
            self.cond.notify_all()

    def wait_bound(self, expected, stall_s):
        """Wait until `expected` pods are bound; False once none got bound for stall_s seconds."""
        last, last_t = -1, time.monotonic()
        report = time.monotonic() + 30
        with self.cond:
            while True:
                n = len(self.bound)
                if n >= expected:
                    return True
                if self.error:
                    raise BenchError(f"the pod watch failed: {self.error}")
                if n != last:
                    last, last_t = n, time.monotonic()
                elif time.monotonic() - last_t > stall_s:
                    log(f"  stalled: {len(self.seen)}/{expected} pods created, {n} bound")
                    return False
                if time.monotonic() > report:
                    log(f"  {len(self.seen)}/{expected} pods created, {n} bound")
                    report += 30
                self.cond.wait(1)

    def snapshot(self):
        with self.cond:
            return dict(self.seen), dict(self.bound)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------- workload

class Workload:
    """Requests drawn once (seeded), so every peer gets the same pods."""

    def __init__(self, n):
        rng = random.Random(SEED)
        self.reqs = [(rng.choice(CPUS), rng.choice(MEMS)) for _ in range(n + 200)]

    def req(self, i):
        return self.reqs[i % len(self.reqs)]


def pod_spec(scheduler, cpu, mem):
    return {
        "schedulerName": scheduler,
        "terminationGracePeriodSeconds": 0,
        "containers": [{
            "name": "app", "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": cpu, "memory": mem}},
        }],
    }


def pod_manifest(name, scheduler, cpu, mem):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "bench-bare"}},
            "spec": pod_spec(scheduler, cpu, mem)}


def deployment_manifest(name, scheduler, replicas, cpu, mem):
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": pod_spec(scheduler, cpu, mem)}}}


class Creator:
    """POSTs pods and Deployments from a thread pool; records each bare pod's POST response time."""

    def __init__(self, api, workers):
        self.api = api
        self.pool = ThreadPoolExecutor(max_workers=workers)
        self.responded = {}
        self.lock = threading.Lock()
        self.errors = []

    def _post(self, path, body, name):
        try:
            status, data = self.api.request("POST", path, body)
            t = time.monotonic()
            # 409: a retried POST whose first attempt had created it.
            if status not in (201, 409):
                raise BenchError(f"creating {name}: HTTP {status}: {data[:300].decode(errors='replace')}")
            if body["kind"] == "Pod":
                with self.lock:
                    self.responded[name] = t
        except Exception as e:  # reported by wait()
            with self.lock:
                self.errors.append(e)

    def pod(self, name, scheduler, cpu, mem):
        return self.pool.submit(self._post, f"/api/v1/namespaces/{NAMESPACE}/pods",
                                pod_manifest(name, scheduler, cpu, mem), name)

    def deployment(self, name, scheduler, replicas, cpu, mem):
        return self.pool.submit(self._post, f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments",
                                deployment_manifest(name, scheduler, replicas, cpu, mem), name)

    def check(self):
        with self.lock:
            if self.errors:
                raise BenchError(str(self.errors[0]))

    def close(self):
        self.pool.shutdown(wait=True)


# ---------------------------------------------------------------- cluster state

def create_namespace(api):
    status, _ = api.request("GET", f"/api/v1/namespaces/{NAMESPACE}")
    if status == 404:
        api.expect("POST", "/api/v1/namespaces",
                   {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    deadline = time.monotonic() + 60
    while api.request("GET", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/default")[0] != 200:
        if time.monotonic() > deadline:
            raise BenchError(f"no default ServiceAccount in {NAMESPACE} after 60s")
        time.sleep(0.2)


def pod_names(api):
    """Names of the pods in the namespace (a metadata-only LIST)."""
    status, data = api.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods",
                               accept="application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")
    if status != 200:
        raise BenchError(f"listing the pods of {NAMESPACE}: HTTP {status}: {data[:300]!r}")
    return [it["metadata"]["name"] for it in json.loads(data).get("items") or []]


def clean_namespace(api, timeout_s=600):
    """Delete the Deployments, ReplicaSets and pods (grace period 0, 32 DELETEs in parallel: a
    DELETE of the collection deletes one pod after the other and outlasts the apiserver's 60 s
    request timeout with 10,000 pods); wait until no pod is left. The schedulers' events stay
    (they expire after an hour; no peer reads them)."""
    start = time.monotonic()
    bg = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
    api.expect("DELETE", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", bg)
    api.expect("DELETE", f"/apis/apps/v1/namespaces/{NAMESPACE}/replicasets", bg)
    now = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0}

    def one(name):
        try:
            api.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}", now)
        except (http.client.HTTPException, OSError):
            pass  # the next pass deletes it

    with ThreadPoolExecutor(max_workers=32) as ex:
        while True:
            # Again after a pass: pods created meanwhile by a ReplicaSet that
            # the garbage collector had not removed yet.
            names = pod_names(api)
            if not names:
                break
            if time.monotonic() - start > timeout_s:
                raise BenchError(f"{len(names)} pods still in {NAMESPACE} after {timeout_s}s")
            list(ex.map(one, names))
            time.sleep(0.5)
    return time.monotonic() - start


def cpu_seconds(pid):
    """utime + stime of the process (all its threads) in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


# ---------------------------------------------------------------- peers

KUBE_SCHED_CONFIG = """apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: {kubeconfig}
{extra}leaderElection:
  leaderElect: false
profiles:
- schedulerName: {name}
{plugins}"""

BINPACK_CLIENT = """  qps: 5000
  burst: 5000
percentageOfNodesToScore: 100
"""

BINPACK_PLUGINS = """  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
        resources:
        - name: cpu
          weight: 1
        - name: memory
          weight: 1
"""


class Peer:
    def __init__(self, name, args, api):
        self.name, self.args, self.api = name, args, api
        self.scheduler = SCHEDULER_NAME[name]
        self.log_path = os.path.join(args.workdir, f"{name}.log")
        self.proc = None

    def start(self):
        a = self.args
        if self.name == "b0":
            cmd = [a.b0_binder, "--kubeconfig", a.kubeconfig, "--scheduler-name", self.scheduler, "--workers", "32"]
        elif self.name == "nimbus":
            # The client budget kube-binpack gets; the scheduler's workers as they default.
            cmd = [a.operator, "--controllers=scheduler", "--metrics-bind-address=0",
                   "--health-probe-bind-address=0", "--api-bind-address=0", "--kubeconfig", a.kubeconfig,
                   "--kube-api-qps=5000", "--kube-api-burst=5000"]
        else:
            cfg = os.path.join(a.workdir, f"{self.name}.yaml")
            binpack = self.name == "kube-binpack"
            with open(cfg, "w") as f:
                f.write(KUBE_SCHED_CONFIG.format(kubeconfig=a.scheduler_kubeconfig, name=self.scheduler,
                                                 extra=BINPACK_CLIENT if binpack else "",
                                                 plugins=BINPACK_PLUGINS if binpack else ""))
            cmd = [a.kube_scheduler, "--config", cfg, "--bind-address", "127.0.0.1",
                   "--secure-port", str(a.scheduler_port),
                   "--authentication-kubeconfig", a.scheduler_kubeconfig,
                   "--authorization-kubeconfig", a.scheduler_kubeconfig]
        log(f"{self.name}: starting {os.path.basename(cmd[0])} (log {self.log_path})")
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not self.ready():
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited at start (status {self.proc.returncode}); see {self.log_path}")
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name} not ready after 120s; see {self.log_path}")
            time.sleep(0.2)

    def log_has(self, needle):
        with open(self.log_path, "rb") as f:
            return needle in f.read()

    def ready(self):
        if self.name == "b0":
            return self.log_has(b'"ready":true')
        if self.name == "nimbus":
            return self.log_has(b"reconcilers started")
        try:
            ctx = ssl._create_unverified_context()
            c = http.client.HTTPSConnection("127.0.0.1", self.args.scheduler_port, context=ctx, timeout=2)
            c.request("GET", "/healthz")
            ok = c.getresponse().status == 200
            c.close()
            return ok
        except OSError:
            return False

    def cpu(self):
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited (status {self.proc.returncode}); see {self.log_path}")
        return cpu_seconds(self.proc.pid)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.logf.close()


# ---------------------------------------------------------------- runs

def percentile(xs, p):
    s = sorted(xs)
    return s[max(0, math.ceil(p * len(s)) - 1)] if s else float("nan")


class Result:
    def __init__(self, tag, expected):
        self.tag, self.expected = tag, expected
        self.bound = 0
        self.timed_out = False
        self.pods_per_s = float("nan")
        self.p50 = self.p99 = float("nan")
        self.nodes_used = 0
        self.nodes_bare = 0       # nodes holding bare pods (not from Deployments)
        self.min_nodes = 0        # the fewest nodes that can hold the run's pods
        self.overcommitted = 0
        self.cpu_s = float("nan")
        self.create_s = float("nan")
        self.clean_s = 0.0


def run(args, api, peer, workload, tag, total, deployments, replicas, rate):
    """One run: `total` pods for `peer`, as fast as possible (rate None) or paced at `rate` pods/s.

    Saturating: `deployments` Deployments of `replicas` pods each, then the rest as bare pods.
    Paced: every 5th arrival is a 1-replica Deployment, the others bare pods."""
    res = Result(tag, total)
    watch = Watch(args, api)
    creator = Creator(api, args.workers)
    requests = {}  # name or Deployment name -> (cpu, mem)
    copies = {}    # the same -> how many pods it makes
    # Names no other peer or run uses: a DELETE of an earlier run that the
    # loaded apiserver serves late must not hit a pod of this one.
    prefix = f"{peer.name}-{tag}"
    try:
        cpu0 = peer.cpu()
        t0 = time.monotonic()
        i = 0
        if rate is None:
            for d in range(deployments):
                name = f"{prefix}-d{d:02d}"
                requests[name], copies[name] = workload.req(i), replicas
                creator.deployment(name, peer.scheduler, replicas, *requests[name])
                i += 1
            for k in range(total - deployments * replicas):
                name = f"{prefix}-{k:05d}"
                requests[name], copies[name] = workload.req(i), 1
                creator.pod(name, peer.scheduler, *requests[name])
                i += 1
        else:
            for k in range(total):
                due = t0 + k / rate
                while True:
                    d = due - time.monotonic()
                    if d <= 0:
                        break
                    time.sleep(d)
                if k % 5 == 4:
                    name = f"{prefix}-d{k:05d}"
                    requests[name], copies[name] = workload.req(k), 1
                    creator.deployment(name, peer.scheduler, 1, *requests[name])
                else:
                    name = f"{prefix}-{k:05d}"
                    requests[name], copies[name] = workload.req(k), 1
                    creator.pod(name, peer.scheduler, *requests[name])
        creator.close()
        res.create_s = time.monotonic() - t0
        # The fewest nodes that can hold the run's pods (by cpu, memory and pod count).
        tot_cpu = tot_mem = 0
        for name, (cpu, mem) in requests.items():
            k = copies[name]
            tot_cpu += k * CPU_MILLI[cpu]
            tot_mem += k * MEM_BYTES[mem]
        res.min_nodes = max(math.ceil(tot_cpu / args.node_cpu_milli), math.ceil(tot_mem / args.node_memory),
                            math.ceil(total / args.node_pods))
        creator.check()
        done = watch.wait_bound(total, STALL_S)
        cpu1 = peer.cpu()
        seen, bound = watch.snapshot()
        res.cpu_s = cpu1 - cpu0
        res.timed_out = not done
        res.bound = len(bound)
        if not bound:
            raise BenchError(f"{peer.name} bound none of the {total} pods of run {tag}; see {peer.log_path}")
        lat = []
        per_node = {}
        for name, (node, tb) in bound.items():
            tc = seen.get(name, tb)
            if name in creator.responded:
                tc = min(tc, creator.responded[name])
            lat.append(tb - tc)
            # A Deployment's pod is named <deployment>-<rs hash>-<suffix>.
            owner = name if name in requests else name.rsplit("-", 2)[0]
            cpu, mem = requests.get(owner, ("0", "0Mi"))
            c, m, n = per_node.get(node, (0, 0, 0))
            per_node[node] = (c + CPU_MILLI.get(cpu, 0), m + MEM_BYTES.get(mem, 0), n + 1)
        last = max(tb for _, tb in bound.values())
        res.pods_per_s = len(bound) / (last - t0)
        res.p50, res.p99 = statistics.median(lat), percentile(lat, 0.99)
        res.nodes_used = len(per_node)
        res.nodes_bare = len({node for name, (node, _) in bound.items() if name in creator.responded})
        res.overcommitted = sum(1 for c, m, n in per_node.values()
                                if c > args.node_cpu_milli or m > args.node_memory or n > args.node_pods)
        log(f"{peer.name} {tag}: {res.bound}/{total} bound{' (STALLED)' if res.timed_out else ''}, "
            f"{res.pods_per_s:.1f} pods/s, p50 {fmt_lat(res.p50)}, p99 {fmt_lat(res.p99)}, "
            f"{res.nodes_used} nodes, {res.cpu_s:.2f} CPU-s, created in {res.create_s:.1f}s, load {loadavg()}"
            + "".join(f", bench watch {k} {v}x" for k, v in sorted(watch.notes.items())))
        return res
    finally:
        creator.pool.shutdown(wait=False, cancel_futures=True)
        watch.stop()
        res.clean_s = clean_namespace(api)
        log(f"{peer.name} {tag}: cleaned up in {res.clean_s:.1f}s")


def warm_up(args, api, peer):
    """One pod through the peer before the timed runs: its caches are synced and its connections open."""
    watch = Watch(args, api)
    try:
        status, data = api.request("POST", f"/api/v1/namespaces/{NAMESPACE}/pods",
                                   pod_manifest(f"{peer.name}-warm-up", peer.scheduler, "100m", "128Mi"))
        if status != 201:
            raise BenchError(f"creating the warm-up pod: HTTP {status}: {data[:300]!r}")
        if not watch.wait_bound(1, 60):
            raise BenchError(f"{peer.name} did not bind the warm-up pod within 60s; see {peer.log_path}")
    finally:
        watch.stop()
        clean_namespace(api)


def bench_peer(args, api, name, workload):
    p = PRESETS[args.preset]
    peer = Peer(name, args, api)
    results = {}
    try:
        peer.start()
        warm_up(args, api, peer)
        log(f"{name}: saturating run, {p['pods']} pods ({p['deployments']} Deployments x {p['replicas']})")
        results["sat"] = run(args, api, peer, workload, "sat", p["pods"], p["deployments"], p["replicas"], None)
        for rate, n in p["rates"]:
            log(f"{name}: {n} pods at {rate}/s")
            results[rate] = run(args, api, peer, workload, f"r{rate}", n, 0, 0, rate)
    finally:
        peer.stop()
    return results


# ---------------------------------------------------------------- report

def fmt_lat(s):
    if s != s:
        return "-"
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def print_table(rows, head):
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(v.ljust(widths[i]) for i, v in enumerate(r)).rstrip())


def report(args, all_results, load_start):
    p = PRESETS[args.preset]
    (r1, n1), (r2, n2) = p["rates"]
    print()
    print(f"hack/bench/scheduler --preset {args.preset}: {p['nodes']} kwok nodes ({args.node_cpu_milli // 1000} CPU, "
          f"{args.node_memory >> 30}Gi, {args.node_pods} pods each), saturating run {p['pods']} pods "
          f"({p['deployments'] * p['replicas']} from {p['deployments']} Deployments), {n1} pods at {r1}/s, "
          f"{n2} at {r2}/s; {os.cpu_count()} CPUs, load average {load_start} at the start, {loadavg()} at the end")
    head = ("peer", "pods/s sat", "p50 sat", "p99 sat", f"p50 @{r1}/s", f"p99 @{r1}/s", f"p50 @{r2}/s",
            f"p99 @{r2}/s", "nodes used", "CPU-s sat")
    rows = []
    for name in PEERS:
        res = all_results.get(name)
        if not res:
            rows.append((name,) + ("-",) * (len(head) - 1))
            continue
        s = res["sat"]
        mark = "" if not s.timed_out else f" ({s.bound}/{s.expected})"
        rows.append((name, f"{s.pods_per_s:.1f}{mark}", fmt_lat(s.p50), fmt_lat(s.p99),
                     fmt_lat(res[r1].p50) + ("*" if res[r1].timed_out else ""), fmt_lat(res[r1].p99),
                     fmt_lat(res[r2].p50) + ("*" if res[r2].timed_out else ""), fmt_lat(res[r2].p99),
                     str(s.nodes_used), f"{s.cpu_s:.1f}"))
    print_table(rows, head)
    sat = next((res["sat"] for res in all_results.values()), None)
    if sat:
        print(f"nodes used: nodes holding pods at the end of the saturating run; its pods' requests "
              f"(CPU, memory, count) need at least {sat.min_nodes}")
    print()
    ratios = []

    def ratio(label, a, b, goal, ok):
        if a not in all_results or b not in all_results:
            ratios.append((label, "-", goal, "-"))
            return
        x, y = ok[0](all_results[a]["sat"]), ok[0](all_results[b]["sat"])
        r = x / y if y else float("inf")
        ratios.append((label, f"{r:.2f}x", goal, "PASS" if ok[1](r) else "MISS"))

    ratio("throughput nimbus / kube-binpack", "nimbus", "kube-binpack", ">= 1.0x",
          (lambda s: s.pods_per_s, lambda r: r >= 1.0))
    ratio("throughput nimbus / B0", "nimbus", "b0", ">= 0.8x", (lambda s: s.pods_per_s, lambda r: r >= 0.8))
    ratio("nodes used nimbus / kube-binpack", "nimbus", "kube-binpack", "<= 1.0x",
          (lambda s: s.nodes_used, lambda r: r <= 1.0))
    ratio("CPU-s nimbus / kube-binpack", "nimbus", "kube-binpack", "<= 0.5x",
          (lambda s: s.cpu_s, lambda r: r <= 0.5))
    print_table(ratios, ("ratio (saturating run)", "value", "goal", "result"))
    print()
    for name in PEERS:
        res = all_results.get(name)
        if not res:
            continue
        s = res["sat"]
        # The creator cannot keep a pace the machine cannot take: say the pace it kept.
        extra = "".join(f"; @{r}/s {res[r].bound}/{res[r].expected} bound (arrived at "
                        f"{res[r].expected / res[r].create_s:.1f}/s), {res[r].nodes_used} nodes, "
                        f"{res[r].cpu_s:.1f} CPU-s" for r, _ in p["rates"])
        print(f"{name}: saturating run created in {s.create_s:.1f}s, {s.bound}/{s.expected} bound, "
              f"{s.nodes_bare} nodes with bare pods, {s.overcommitted} nodes over-committed{extra}")
    if any(r.timed_out for res in all_results.values() for r in res.values()):
        print(f"(n/N) or *: the run stalled (no binding for {STALL_S}s) before every pod was bound; "
              "its figures cover the bound pods only")
    sys.stdout.flush()


def parse_quantity(s):
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "m": 0.001, "": 1}
    for u in sorted(units, key=len, reverse=True):
        if u and s.endswith(u):
            return float(s[:-len(u)]) * units[u]
    return float(s)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--watch-child", help=argparse.SUPPRESS)
    ap.add_argument("--server", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--kubeconfig")
    ap.add_argument("--scheduler-kubeconfig")
    ap.add_argument("--kube-scheduler")
    ap.add_argument("--scheduler-port", type=int)
    ap.add_argument("--b0-binder")
    ap.add_argument("--operator")
    ap.add_argument("--workdir")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="full")
    ap.add_argument("--peers", default=",".join(PEERS), help="comma-separated subset, for debugging")
    ap.add_argument("--workers", type=int, default=32, help="parallel POSTs when creating pods")
    args = ap.parse_args()
    if args.watch_child:
        return watch_child(args)
    # SIGTERM unwinds like Ctrl-C, so that the finally blocks stop the peer and the watcher.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    api = Api(args.server, args.ca, args.cert, args.key)
    load_start = loadavg()
    nodes = api.expect("GET", "/api/v1/nodes")["items"]
    want = PRESETS[args.preset]["nodes"]
    if len(nodes) != want:
        raise BenchError(f"the cluster has {len(nodes)} nodes, the preset wants {want}")
    alloc = nodes[0]["status"]["allocatable"]
    args.node_cpu_milli = int(parse_quantity(alloc["cpu"]) * 1000)
    args.node_memory = int(parse_quantity(alloc["memory"]))
    args.node_pods = int(alloc["pods"])
    create_namespace(api)
    if pod_names(api):
        log(f"{NAMESPACE} has pods left from an earlier run; deleting them")
        clean_namespace(api)
    workload = Workload(PRESETS[args.preset]["pods"])
    all_results = {}
    for name in args.peers.split(","):
        if name not in PEERS:
            raise BenchError(f"unknown peer {name}; peers are {', '.join(PEERS)}")
        all_results[name] = bench_peer(args, api, name, workload)
    report(args, all_results, load_start)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(1)
