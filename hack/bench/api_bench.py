#!/usr/bin/env python3
"""Measurements of hack/bench/api (see its header for the method).

Runs against the cluster and PostgreSQL that hack/bench/api brought up (the
DB_* variables in the environment, the CRD applied); starts nimbus-operator
and nginx itself and stops them at the end. Prints the result table on
stdout. Only the standard library, wrk, nginx and psql are used.
"""
import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from informer_bench import Api, BenchError, log, loadavg, stop

LOAD_TENANT = "abench"               # the tenant whose namespace gets the ComputeRequests
LOAD_NS = f"nimbus-{LOAD_TENANT}"
SCHEDULER = "nimbus-bench-unserved"  # served by no scheduler: no pods churn
WARMUP_S = 2
LOAD_THREADS = 4
PODS_PER_TENANT = 4
WINDOWS_PER_POD = 6
GOAL_RATIO = 0.5
GOAL_P99_MS = 10.0


def http(base, method, path, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def expect(base, method, path, body=None, token=None, ok=(200, 201)):
    status, data = http(base, method, path, body, token)
    if status not in ok:
        raise BenchError(f"{method} {path}: HTTP {status}: {data[:300].decode(errors='replace')}")
    return data


def start_operator(args, env, log_path):
    out = open(log_path, "ab")
    proc = subprocess.Popen([args.operator, "--controllers=workload", "--metrics-bind-address=0",
                             "--health-probe-bind-address=0", f"--api-bind-address=127.0.0.1:{args.api_port}",
                             "--kubeconfig", args.kubeconfig], stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while True:
        with open(log_path, "rb") as f:
            text = f.read()
        if b"reconcilers started" in text and b"serving the REST API" in text:
            return proc
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise BenchError(f"nimbus-operator did not start; see {log_path}")
        time.sleep(0.05)


def psql(sql):
    env = dict(os.environ, PGPASSWORD=os.environ.get("DB_PASSWORD", ""))
    proc = subprocess.run(["psql", "-h", os.environ["DB_HOST"], "-p", os.environ["DB_PORT"], "-U",
                           os.environ["DB_USER"], "-d", os.environ["DB_NAME"], "-v", "ON_ERROR_STOP=1", "-qAt",
                           "-c", sql], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise BenchError(f"psql failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def start_nginx(args, root):
    conf = os.path.join(args.workdir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off;
worker_processes auto;
pid {args.workdir}/nginx.pid;
error_log {args.workdir}/nginx.error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {args.workdir}/nginx-tmp;
    proxy_temp_path {args.workdir}/nginx-tmp;
    fastcgi_temp_path {args.workdir}/nginx-tmp;
    uwsgi_temp_path {args.workdir}/nginx-tmp;
    scgi_temp_path {args.workdir}/nginx-tmp;
    types {{ application/json json; }}
    server {{
        listen 127.0.0.1:{args.nginx_port};
        root {root};
    }}
}}
""")
    os.makedirs(os.path.join(args.workdir, "nginx-tmp"), exist_ok=True)
    proc = subprocess.Popen(["nginx", "-c", conf, "-e", os.path.join(args.workdir, "nginx.error.log")],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(args.workdir, "nginx.stderr"), "ab"))
    deadline = time.monotonic() + 10
    while True:
        try:
            if http(f"http://127.0.0.1:{args.nginx_port}", "GET", "/tenants.json")[0] == 200:
                return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise BenchError(f"nginx did not start; see {args.workdir}/nginx.stderr")
        time.sleep(0.05)


class ReconcileLoad:
    """ComputeRequests POSTed at `rate` per second in all, by LOAD_THREADS threads (one slow apiserver answer
    does not hold up the rest), until stopped."""

    def __init__(self, api, rate):
        self.api, self.rate = api, rate
        self.counts = [0] * LOAD_THREADS
        self.errors = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(LOAD_THREADS)]

    @property
    def created(self):
        return sum(self.counts)

    def _run(self, i):
        path = f"/apis/nimbus.io/v1/namespaces/{LOAD_NS}/computerequests"
        per_thread = self.rate / LOAD_THREADS
        try:
            while not self.stopping.is_set():
                delay = self.t0 + self.counts[i] / per_thread - time.monotonic()
                if delay > 0 and self.stopping.wait(delay):
                    break
                self.api.expect("POST", path, {
                    "apiVersion": "nimbus.io/v1", "kind": "ComputeRequest",
                    "metadata": {"name": f"load-{i}-{self.counts[i]:05d}", "namespace": LOAD_NS},
                    "spec": {"tenantId": LOAD_TENANT, "image": "registry.k8s.io/pause:3.10", "cpu": "10m",
                             "memory": "16Mi", "replicas": 0, "schedulerName": SCHEDULER}})
                self.counts[i] += 1
        except Exception as e:  # reported by stop()
            self.errors.append(e)

    def start(self):
        self.t0 = time.monotonic()
        for t in self.threads:
            t.start()

    def alive(self):
        return any(t.is_alive() for t in self.threads)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join()
        self.seconds = time.monotonic() - self.t0
        if self.errors:
            raise BenchError(f"the reconcile load failed: {self.errors[0]}")


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url, seconds, connections, token=None):
    """One wrk run; returns (requests/s, p99 in ms)."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True)
    if out.returncode:
        raise BenchError(f"wrk {url} failed: {out.stderr.strip()}")
    text = out.stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if bad:
        raise BenchError(f"wrk {url}: {bad.group(1)} answers were not 2xx:\n{text}")
    errs = re.search(r"Socket errors: (.*)", text)
    if errs and re.search(r"[1-9]", errs.group(1)):
        raise BenchError(f"wrk {url}: socket errors {errs.group(1)}:\n{text}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    return rps, float(m.group(1)) * UNITS[m.group(2)]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    for a in ("--server", "--ca", "--cert", "--key", "--kubeconfig", "--operator", "--workdir"):
        ap.add_argument(a, required=True)
    ap.add_argument("--api-port", type=int, required=True)
    ap.add_argument("--nginx-port", type=int, required=True)
    ap.add_argument("--tenants", type=int, default=500)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rate", type=float, default=20.0)
    args = ap.parse_args()

    api = Api(args.server, args.ca, args.cert, args.key)
    load_start = loadavg()
    password = secrets.token_urlsafe(24)
    env = dict(os.environ, JWT_SECRET=secrets.token_hex(32), NIMBUS_ADMIN_PASSWORD=password)
    base = f"http://127.0.0.1:{args.api_port}"
    op = start_operator(args, env, os.path.join(args.workdir, "operator.log"))
    nginx = None
    load = None
    try:
        token = json.loads(expect(base, "POST", "/auth/token", {"username": "admin", "password": password}))["token"]
        log(f"creating {args.tenants} tenants through POST /tenants")
        names = [f"t{i:04d}" for i in range(args.tenants - 1)] + [LOAD_TENANT]
        with ThreadPoolExecutor(max_workers=8) as ex:
            for f in [ex.submit(expect, base, "POST", "/tenants", {"name": n}, token) for n in names]:
                f.result()
        log(f"inserting {PODS_PER_TENANT * WINDOWS_PER_POD} billing_usage rows per tenant")
        psql("INSERT INTO billing_usage (tenant_id, pod_uid, window_start, window_end, cpu_milli_seconds, "
             "memory_byte_seconds) SELECT t.id, 'pod-' || p, now() - (w + 1) * interval '30 s', "
             "now() - w * interval '30 s', 15000.5, 8053063680 FROM tenants t, "
             f"generate_series(1, {PODS_PER_TENANT}) p, generate_series(0, {WINDOWS_PER_POD - 1}) w")
        api.expect("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": LOAD_NS, "labels": {"nimbus.io/tenant": LOAD_TENANT}}})

        routes = [("GET /tenants", f"/tenants?limit={args.tenants}", "tenants.json"),
                  ("GET /billing/usage", "/billing/usage", "usage.json")]
        root = os.path.join(args.workdir, "www")
        os.makedirs(root, exist_ok=True)
        os.chmod(args.workdir, 0o755)
        os.chmod(root, 0o755)
        sizes = {}
        for _, path, file in routes:
            body = expect(base, "GET", path, token=token)
            items = len(json.loads(body)["items"])
            if items != args.tenants:
                raise BenchError(f"GET {path} answered {items} items, not {args.tenants}")
            with open(os.path.join(root, file), "wb") as f:
                f.write(body)
            os.chmod(os.path.join(root, file), 0o644)
            sizes[file] = len(body)
        nginx = start_nginx(args, root)
        nginx_base = f"http://127.0.0.1:{args.nginx_port}"

        log(f"reconcile load: ComputeRequests at {args.rate:g}/s in {LOAD_NS} until the end")
        load = ReconcileLoad(api, args.rate)
        load.start()
        results = []
        for what, path, file in routes:
            measured = {}
            for server, url, tok in (("nginx", nginx_base + "/" + file, None), ("nimbus", base + path, token)):
                wrk(url, WARMUP_S, args.connections, tok)
                measured[server] = wrk(url, args.duration, args.connections, tok)
                log(f"  {what}, {server}: {measured[server][0]:.0f} req/s, p99 {measured[server][1]:.2f} ms")
            results.append((what, sizes[file], measured))
        load.stop()
        load_end = loadavg()
        deployments = len(api.expect("GET", f"/apis/apps/v1/namespaces/{LOAD_NS}/deployments")["items"])
    finally:
        if load and load.alive():
            load.stopping.set()
            for t in load.threads:
                t.join()
        if nginx:
            stop(nginx)
        stop(op)

    head = ("route", "body", "nimbus req/s", "nginx req/s", "nimbus/nginx", "nimbus p99", "nginx p99", "goal",
            "result")
    rows = []
    for what, size, m in results:
        (nr, np99), (gr, gp99) = m["nimbus"], m["nginx"]
        ok = nr >= GOAL_RATIO * gr and np99 < GOAL_P99_MS
        rows.append((what, f"{size / 1024:.0f} KiB", f"{nr:.0f}", f"{gr:.0f}", f"{nr / gr:.2f}x", f"{np99:.2f} ms",
                     f"{gp99:.2f} ms", f">= {GOAL_RATIO}x, p99 < {GOAL_P99_MS:g} ms", "PASS" if ok else "MISS"))
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    print()
    print(f"hack/bench/api: {args.tenants} tenants, wrk -t2 -c{args.connections} -d{args.duration}s per run, "
          f"{os.cpu_count()} CPUs, load average {load_start} at the start, {load_end} at the end")
    print(f"reconcile load meanwhile: {load.created} ComputeRequests in {load.seconds:.0f} s "
          f"({load.created / load.seconds:.1f}/s), {deployments} Deployments made by the operator by the end")
    for r in [head] + rows:
        print("  ".join(v.ljust(widths[i]) for i, v in enumerate(r)).rstrip())
    sys.stdout.flush()


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(1)
