"""The soak run behind hack/soak: nimbus-operator under continuous churn, sampled.

One nimbus-operator (every controller, the API) runs against the cluster of
KUBECONFIG and the database of DB_*. A driver churns through the REST API:
tenants created and deleted, ComputeRequests created, scaled and deleted (so
their pods come and go), reads of every list and the event websocket, and
now and then a pod deleted with kubectl. Every --sample-seconds the
operator's resident memory, open file descriptors and threads are read
from /proc.

At the end (SIGTERM: the operator must stop cleanly) the samples after the
warm-up (20 % of the run, at least 90 s: the caches, the event ring and the
malloc arenas of a fresh process fill for minutes) are fitted by least
squares, and the run fails on:
  - clear growth: the fitted line rises by more than max(2 MiB, 10 % of
    the mean) of RSS, 4 file descriptors or 2 threads over the measured
    window, and the median of the window's last quarter exceeds that of
    its first quarter by as much. A leak of one per churn cycle shows as
    tens in both; a burst of connections in the last minute, which tilts
    a least-squares line, does not move the medians. The kinds of open
    fds (socket, pipe, file, anon_inode) at the start and the end of the
    window are reported;
  - a log line that is not JSON, or a line at level error that no entry
    of ALLOWED_ERRORS explains (each entry gives its reason);
  - a driver request answered 5xx.
The report (report.json, samples.csv, the operator's log) goes to --out.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import websocket

# Error lines a churn run produces by design: (logger, message regex, reason).
ALLOWED_ERRORS = [
]

ADMIN_PASSWORD = "soak-admin-password-0123"
JWT_SECRET = "5eed50a4" * 8


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_sample(pid):
    """(rss KiB, open fds, threads) of pid from /proc."""
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd")), threads


def fd_kinds(pid):
    """{kind: count} of pid's open fds: socket, pipe, anon_inode or file."""
    kinds = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kind = target.split(":", 1)[0] if target.startswith(("socket:", "pipe:", "anon_inode:")) else "file"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def slope(xs, ys):
    """Least-squares slope of ys over xs."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0


class Api:
    def __init__(self, base):
        self.base = base
        self.token = None
        self.token_at = 0.0
        self.calls = 0
        self.server_errors = []

    def call(self, method, path, body=None, auth=True):
        if auth and time.monotonic() - self.token_at > 600:
            self.login()
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", "Bearer " + self.token)
        self.calls += 1
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        if status >= 500:
            self.server_errors.append(f"{method} {path}: {status} {raw[:200]!r}")
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, None

    def login(self):
        status, body = self.call("POST", "/auth/token", {"username": "admin", "password": ADMIN_PASSWORD},
                                 auth=False)
        if status != 200:
            raise SystemExit(f"soak: admin login answered {status}: {body}")
        self.token, self.token_at = body["token"], time.monotonic()


class Churn:
    """The driver: one action a second, chosen at random among those that apply."""

    def __init__(self, api, max_tenants, run_id):
        self.api = api
        self.max_tenants = max_tenants
        self.run_id = run_id
        self.tenants = {}  # name -> set of workload names
        self.seq = 0
        self.counts = {}
        self.rng = random.Random(run_id)

    def count(self, what):
        self.counts[what] = self.counts.get(what, 0) + 1

    def name(self, prefix):
        self.seq += 1
        return f"{prefix}{self.run_id}-{self.seq}"

    def create_tenant(self):
        name = self.name("soak")
        s, _ = self.api.call("POST", "/tenants", {"name": name, "cpu_quota": "2", "memory_quota": "4Gi",
                                                  "pods_quota": 20})
        if s == 201:
            self.tenants[name] = set()
            self.count("tenant created")

    def delete_tenant(self):
        name = self.rng.choice(sorted(self.tenants))
        s, _ = self.api.call("DELETE", f"/tenants/{name}")
        if s in (200, 202, 404):
            del self.tenants[name]
            self.count("tenant deleted")

    def create_workload(self, tenant):
        name = self.name("w")
        s, _ = self.api.call("POST", f"/api/v1/tenants/{tenant}/workloads",
                             {"name": name, "image": "nginx", "cpu": "100m", "memory": "64Mi",
                              "replicas": self.rng.randint(1, 3)})
        if s == 201:
            self.tenants[tenant].add(name)
            self.count("workload created")

    def scale_workload(self, tenant):
        name = self.rng.choice(sorted(self.tenants[tenant]))
        s, _ = self.api.call("PATCH", f"/api/v1/tenants/{tenant}/workloads/{name}",
                             {"replicas": self.rng.randint(0, 3)})
        if s == 200:
            self.count("workload scaled")

    def delete_workload(self, tenant):
        name = self.rng.choice(sorted(self.tenants[tenant]))
        s, _ = self.api.call("DELETE", f"/api/v1/tenants/{tenant}/workloads/{name}")
        if s in (200, 202, 204, 404):
            self.tenants[tenant].discard(name)
            self.count("workload deleted")

    def read_everything(self):
        for path in ("/tenants", "/api/v1/workloads", "/billing/usage", "/api/v1/scheduler", "/api/v1/autoscaler"):
            self.api.call("GET", path)
        self.count("reads")

    def websocket_session(self):
        ws = websocket.create_connection(self.api.base.replace("http", "ws", 1) + "/api/v1/events",
                                         header=[f"Authorization: Bearer {self.api.token}"], timeout=10)
        ws.settimeout(2)
        try:
            ws.recv()
        except websocket.WebSocketTimeoutException:
            pass
        ws.close()
        self.count("websocket sessions")

    def delete_a_pod(self):
        tenant = self.rng.choice(sorted(self.tenants))
        subprocess.run(["kubectl", "delete", "pods", "--all", "-n", f"nimbus-{tenant}", "--wait=false"],
                       capture_output=True, timeout=60)
        self.count("pods deleted by hand")

    def step(self):
        with_workloads = [t for t, ws in self.tenants.items() if ws]
        actions = []
        if len(self.tenants) < self.max_tenants:
            actions += [self.create_tenant] * 3
        if len(self.tenants) >= self.max_tenants or (self.tenants and self.rng.random() < 0.05):
            actions.append(self.delete_tenant)
        for t, ws in self.tenants.items():
            if len(ws) < 3:
                actions.append(lambda t=t: self.create_workload(t))
        for t in with_workloads:
            actions += [lambda t=t: self.scale_workload(t)] * 2 + [lambda t=t: self.delete_workload(t)]
        actions += [self.read_everything] * 2
        if self.rng.random() < 0.05:
            actions.append(self.websocket_session)
        if self.tenants and self.rng.random() < 0.03:
            actions.append(self.delete_a_pod)
        self.rng.choice(actions)()

    def cleanup(self):
        for name in list(self.tenants):
            self.api.call("DELETE", f"/tenants/{name}")


def check_logs(path):
    """(unexplained error lines, explained counts, warn counts, non-JSON lines)."""
    unexplained, explained, warns, bad = [], {}, {}, []
    with open(path) as f:
        for raw in f:
            try:
                line = json.loads(raw)
            except ValueError:
                bad.append(raw.rstrip()[:300])
                continue
            level, logger, msg = line.get("level"), line.get("logger", ""), line.get("msg", "")
            if level == "warn":
                warns[f"{logger}: {msg}"] = warns.get(f"{logger}: {msg}", 0) + 1
            if level not in ("error", "fatal"):
                continue
            for lg, rx, _ in ALLOWED_ERRORS:
                if logger == lg and re.search(rx, msg):
                    explained[f"{logger}: {msg}"] = explained.get(f"{logger}: {msg}", 0) + 1
                    break
            else:
                unexplained.append(raw.rstrip()[:500])
    return unexplained, explained, warns, bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--sample-seconds", type=float, default=5)
    ap.add_argument("--max-tenants", type=int, default=4)
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    # A copy of the binary, so that a rebuild during a long run changes nothing.
    binary = os.path.join(args.out, "nimbus-operator")
    shutil.copy2(os.path.join(args.build_dir, "operator/nimbus-operator"), binary)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run(["kubectl", "apply", "-f", os.path.join(root, "crds/computerequest.yaml")], check=True,
                   capture_output=True, timeout=60)
    subprocess.run(["kubectl", "wait", "--for=condition=Established", "crd/computerequests.nimbus.io",
                    "--timeout=60s"], check=True, capture_output=True, timeout=90)

    api_port, metrics_port, health_port = free_port(), free_port(), free_port()
    log_path = os.path.join(args.out, "operator.log")
    env = dict(os.environ, JWT_SECRET=JWT_SECRET, NIMBUS_ADMIN_PASSWORD=ADMIN_PASSWORD)
    log = open(log_path, "w")
    proc = subprocess.Popen([binary, f"--api-bind-address=127.0.0.1:{api_port}",
                             f"--metrics-bind-address=127.0.0.1:{metrics_port}",
                             f"--health-probe-bind-address=127.0.0.1:{health_port}",
                             "--billing-period=10s", "--autoscaler-period=10s"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{api_port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{health_port}/readyz", timeout=2).read()
            urllib.request.urlopen(f"{base}/openapi.json", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"soak: nimbus-operator did not become ready; see {log_path}")
            time.sleep(0.5)

    samples = []  # (seconds since start, rss KiB, fds, threads)
    stop = threading.Event()
    t0 = time.monotonic()
    warmup = max(90.0, 0.2 * args.minutes * 60)
    kinds = {}

    def sample():
        while not stop.is_set():
            try:
                samples.append((time.monotonic() - t0, *proc_sample(proc.pid)))
                if samples[-1][0] >= warmup:
                    kinds.setdefault("window_start", fd_kinds(proc.pid))
                    kinds["window_end"] = fd_kinds(proc.pid)
            except OSError:
                return
            stop.wait(args.sample_seconds)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    api = Api(base)
    churn = Churn(api, args.max_tenants, f"{os.getpid() % 10000:04d}")
    end = t0 + args.minutes * 60
    driver_errors = []
    try:
        api.login()
        while time.monotonic() < end and proc.poll() is None:
            try:
                churn.step()
            except (OSError, websocket.WebSocketException, subprocess.TimeoutExpired) as e:
                driver_errors.append(f"{type(e).__name__}: {e}")
            time.sleep(1)
    finally:
        stop.set()
        sampler.join()
        crashed = proc.poll()
        try:
            churn.cleanup()
        except OSError:
            pass
        if crashed is None and sys.exc_info()[0] is not None:
            proc.kill()
    if crashed is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()

    window = [s for s in samples if s[0] >= warmup] or samples
    quarter = max(1, len(window) // 4)

    def median(values):
        v = sorted(values)
        return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2

    def fit(rows, i):
        xs, ys = [r[0] / 60 for r in rows], [r[i] for r in rows]
        span = xs[-1] - xs[0] if len(xs) > 1 else 0.0
        sl = slope(xs, ys) if len(xs) > 1 else 0.0
        return sl, sl * span, sum(ys) / len(ys), span
    fits, failures = {}, []
    for i, what, unit, limit in ((1, "rss_kib", "KiB", None), (2, "fds", "", 4), (3, "threads", "", 2)):
        sl, rise, mean, span = fit(window, i)
        ys = [r[i] for r in window]
        step = median(ys[-quarter:]) - median(ys[:quarter])
        fits[what] = {"slope_per_min": round(sl, 3), "rise_over_window": round(rise, 2),
                      "quarter_medians_rise": step, "window_min": round(span, 1),
                      "mean": round(mean, 1), "min": min(ys), "max": max(ys)}
        lim = limit if limit is not None else max(2048, 0.10 * mean)
        if rise > lim and step > lim:
            failures.append(f"{what} grows: {sl:+.3f} {unit}/min over {span:.1f} min ({rise:+.1f}), "
                            f"last quarter's median {step:+} above the first's")
    unexplained, explained, warns, bad = check_logs(log_path)
    if crashed is not None:
        failures.append(f"nimbus-operator exited during the run with status {crashed}")
    elif proc.returncode != 0:
        failures.append(f"nimbus-operator exited {proc.returncode} on SIGTERM (a clean stop exits 0)")
    failures += [f"unexplained error line: {u}" for u in unexplained]
    failures += [f"log line is not JSON: {b}" for b in bad]
    failures += [f"server error: {s}" for s in api.server_errors]
    failures += [f"driver error: {d}" for d in driver_errors[:20]]

    load = open("/proc/loadavg").read().split()[:3]
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "minutes": args.minutes, "warmup_s": warmup, "samples": len(samples), "window_samples": len(window),
        "load_at_end": load, "api_calls": api.calls, "churn": churn.counts, "fits": fits,
        "fd_kinds": kinds, "explained_errors": explained, "warnings": warns, "failures": failures,
    }
    with open(os.path.join(args.out, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(args.out, "samples.csv"), "w") as f:
        f.write("seconds,rss_kib,fds,threads\n")
        for s in samples:
            f.write(f"{s[0]:.1f},{s[1]},{s[2]},{s[3]}\n")
    print(f"soak: {args.minutes} min, {api.calls} API calls, churn {churn.counts}")
    for what, f in fits.items():
        print(f"soak: {what:8s} slope {f['slope_per_min']:+.3f}/min over {f['window_min']} min after a "
              f"{warmup:.0f} s warm-up; quarter medians {f['quarter_medians_rise']:+} "
              f"(mean {f['mean']}, min {f['min']}, max {f['max']})")
    print(f"soak: open fds by kind at the window's start and end: {kinds.get('window_start')} -> "
          f"{kinds.get('window_end')}")
    print(f"soak: error lines explained by the allow-list: {explained or 'none'}")
    print(f"soak: load average at the end {' '.join(load)}; report in {args.out}/report.json")
    for fl in failures:
        print(f"soak: FAIL {fl}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
