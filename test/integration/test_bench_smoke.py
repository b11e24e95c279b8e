"""hack/bench/scheduler --preset smoke runs to the end, so the benchmark cannot rot.

It brings up a cluster of its own on port base 18200 (100 kwok nodes; another
with NIMBUS_BENCH_PORT_BASE) beside the tests' cluster, runs every peer (B0, kube-default, kube-binpack, nimbus)
on 1,000 pods and the two paced runs, and prints the table. Asserted: every
pod of every run got bound, no scheduler over-committed a node (B0 has no
filter and may), and the table and the ratio lines carry figures. Not asserted: the figures themselves, which on a
shared machine are reported, not tested (the goals' PASS/MISS lines are the
benchmark's business).
"""
import os
import re
import subprocess

from conftest import ROOT

PEERS = ("b0", "kube-default", "kube-binpack", "nimbus")
NUMBER = r"[0-9]+(?:\.[0-9]+)?"
LATENCY = rf"{NUMBER} (?:ms|s)"


def test_scheduler_benchmark_smoke(tmp_path):
    cmd = [os.path.join(ROOT, "hack/bench/scheduler"), "--preset", "smoke",
           "--port-base", os.environ.get("NIMBUS_BENCH_PORT_BASE", "18200")]
    if os.environ.get("NIMBUS_BUILD_DIR"):
        # hack/test has built b0-binder and nimbus-operator there already.
        cmd += ["--build-dir", os.environ["NIMBUS_BUILD_DIR"]]
    log = tmp_path / "bench.stderr"
    with open(log, "w") as err:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, timeout=900)
    tail = log.read_text()[-4000:]
    out = proc.stdout
    assert proc.returncode == 0, f"hack/bench/scheduler exited {proc.returncode}:\n{out}\n{tail}"
    assert "hack/bench/scheduler --preset smoke: 100 kwok nodes" in out, out
    assert re.search(r"^peer\s+pods/s sat\s+p50 sat\s+p99 sat\s+p50 @20/s\s+p99 @20/s\s+p50 @50/s\s+"
                     r"p99 @50/s\s+nodes used\s+CPU-s sat$", out, re.M), f"no result table in:\n{out}"
    for peer in PEERS:
        # Every cell a figure: a run that stalled would carry (n/N) or *.
        row = re.search(rf"^{re.escape(peer)}\s+({NUMBER})\s+" + r"\s+".join([LATENCY] * 6) +
                        rf"\s+([0-9]+)\s+({NUMBER})$", out, re.M)
        assert row, f"no complete row of figures for {peer} in:\n{out}"
        assert float(row.group(1)) > 0 and int(row.group(2)) > 0, row.group(0)
        # Every pod of the three runs bound, none beyond a node's room.
        summary = re.search(rf"^{re.escape(peer)}: saturating run created in {NUMBER}s, (\d+)/(\d+) bound, "
                            rf"\d+ nodes with bare pods, (\d+) nodes over-committed; "
                            rf"@20/s (\d+)/(\d+) bound \(arrived at {NUMBER}/s\), \d+ nodes, {NUMBER} CPU-s; "
                            rf"@50/s (\d+)/(\d+) bound \(arrived at {NUMBER}/s\), \d+ nodes, {NUMBER} CPU-s$", out, re.M)
        assert summary, f"no summary line for {peer} in:\n{out}"
        sat_bound, sat_total, overcommitted, r20_bound, r20_total, r50_bound, r50_total = map(int, summary.groups())
        assert (sat_bound, sat_total) == (1000, 1000), summary.group(0)
        assert r20_bound == r20_total > 0 and r50_bound == r50_total > 0, summary.group(0)
        if peer != "b0":
            assert overcommitted == 0, summary.group(0)
    for ratio in ("throughput nimbus / kube-binpack", "throughput nimbus / B0",
                  "nodes used nimbus / kube-binpack", "CPU-s nimbus / kube-binpack"):
        assert re.search(rf"^{re.escape(ratio)}\s+{NUMBER}x\s+[<>]= {NUMBER}x\s+(PASS|MISS)$", out, re.M), \
            f"no ratio line '{ratio}' in:\n{out}"
    assert "stalled" not in out, out
