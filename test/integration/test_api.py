"""The REST API of nimbus-operator over HTTP, on the real cluster and PostgreSQL.

Every route with admin and tenant tokens, the seed demo over HTTP, the
security rules (401/403/404, forged tokens, bodies, rate limit, CORS) and the
websocket event stream. Tokens for the negative cases are forged here with
the test's JWT_SECRET (HS256 is a few lines of hmac), so no JWT library is
needed.
"""
import base64
import hashlib
import hmac
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import psycopg
import pytest
import websocket

from conftest import API_ADMIN_PASSWORD, API_JWT_SECRET, free_port, kubectl, kubectl_json, wait_until

CONTROLLERS = "--controllers=tenant,workload,scheduler,billing"


def call(base, method, path, body=None, token=None, headers=None, raw=None):
    """One request; returns (status, headers, parsed JSON body or text)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, hdrs, text = r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        status, hdrs, text = e.code, e.headers, e.read().decode()
    try:
        parsed = json.loads(text) if text else None
    except json.JSONDecodeError:
        parsed = text
    return status, hdrs, parsed


def problem(status, hdrs, body, code, field=None):
    """Assert an RFC 7807 answer with status code (and field)."""
    assert status == code, (status, body)
    assert hdrs["Content-Type"].startswith("application/problem+json"), hdrs["Content-Type"]
    assert body["status"] == code and body["type"] == "about:blank" and body["title"] and body["detail"], body
    if field is not None:
        assert body.get("field") == field, body


def admin_token(base):
    s, _, b = call(base, "POST", "/auth/token", {"username": "admin", "password": API_ADMIN_PASSWORD})
    assert s == 200, b
    assert b["role"] == "admin" and b["token_type"] == "Bearer" and b["expires_in"] == 900
    return b["token"]


def key_token(base, key):
    s, _, b = call(base, "POST", "/auth/token", {"api_key": key})
    assert s == 200, b
    assert b["role"] == "tenant"
    return b["token"]


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(claims, secret=API_JWT_SECRET, alg="HS256", header=None):
    h = b64(json.dumps(header or {"alg": alg, "typ": "JWT"}).encode())
    p = b64(json.dumps(claims).encode())
    if alg == "none":
        return f"{h}.{p}."
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    sig = hmac.new(secret.encode(), f"{h}.{p}".encode(), digest).digest()
    return f"{h}.{p}.{b64(sig)}"


def claims(**over):
    now = int(time.time())
    c = {"iss": "nimbus", "aud": "nimbus-api", "sub": "admin", "role": "admin", "tenant_id": "",
         "iat": now, "exp": now + 600}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def new_tenant(base, token, quota=("2", "2Gi")):
    name = f"api-{uuid.uuid4().hex[:8]}"
    s, h, b = call(base, "POST", "/tenants", {"name": name, "cpu_quota": quota[0], "memory_quota": quota[1]}, token)
    assert s == 201, b
    assert b["id"] == name and b["api_key"].startswith("nmbk_") and h["Location"] == f"/api/v1/tenants/{name}"
    return name, b["api_key"]


def wait_namespace(name):
    wait_until(lambda: kubectl("get", "resourcequota", "nimbus-quota", "-n", f"nimbus-{name}",
                               check=False).returncode == 0, 60, what=f"namespace and quota of {name}")
    wait_until(lambda: kubectl("get", "serviceaccount", "default", "-n", f"nimbus-{name}",
                               check=False).returncode == 0, 60, interval=0.2, what="default ServiceAccount")


def cleanup(*tenants):
    for t in tenants:
        kubectl("delete", "namespace", f"nimbus-{t}", "--wait=false", "--ignore-not-found", check=False)


def test_secret_required(build_dir, crd, tmp_path):
    """No JWT_SECRET, or a short one, stops the start with how to make one."""
    for secret, want in ((None, "JWT_SECRET is not set"), ("too-short", "at least 32")):
        env = {k: v for k, v in os.environ.items() if k != "JWT_SECRET"}
        if secret:
            env["JWT_SECRET"] = secret
        proc = subprocess.run([os.path.join(build_dir, "operator/nimbus-operator"), "--metrics-bind-address=0",
                               "--health-probe-bind-address=0", f"--api-bind-address=127.0.0.1:{free_port()}"],
                              env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0
        assert want in proc.stderr and "openssl rand -hex 32" in proc.stderr, proc.stderr


def test_login(api_operator):
    op, base = api_operator(CONTROLLERS)
    # The seed's body no longer buys an admin token.
    s, h, b = call(base, "POST", "/auth/token", {"tenant_id": "admin", "tenant_name": "admin"})
    problem(s, h, b, 401)
    assert "username" in b["detail"] and "api_key" in b["detail"]
    assert h["WWW-Authenticate"].startswith("Bearer")
    problem(*call(base, "POST", "/auth/token", {"username": "admin", "password": "wrong-password"}), 401)
    problem(*call(base, "POST", "/auth/token", {"username": "root", "password": API_ADMIN_PASSWORD}), 401)
    problem(*call(base, "POST", "/auth/token", {"api_key": "nmbk_0123456789abcdef_" + "A" * 43}), 401)
    problem(*call(base, "POST", "/auth/token", {"api_key": "garbage"}), 401)
    problem(*call(base, "POST", "/auth/token", {"username": "admin", "password": 5}), 400, "password")
    problem(*call(base, "POST", "/auth/token", {"username": "admin", "pass": "x"}), 400, "pass")
    problem(*call(base, "POST", "/api/v1/auth/token", raw=b"{not json"), 400)
    tok = admin_token(base)
    s, _, b = call(base, "GET", "/api/v1/tenants", token=tok)
    assert s == 200 and "items" in b
    # The password is never logged; with NIMBUS_ADMIN_PASSWORD set nothing is generated.
    assert API_ADMIN_PASSWORD not in op.text()
    assert "generated the admin password" not in op.text()


def test_security(api_operator):
    _, base = api_operator(CONTROLLERS)
    s, h, b = call(base, "GET", "/api/v1/tenants")
    problem(s, h, b, 401)
    assert "Authorization" in b["detail"]
    problem(*call(base, "GET", "/api/v1/tenants", headers={"Authorization": "Basic YWRtaW46eA=="}), 401)
    problem(*call(base, "GET", "/api/v1/tenants", token="not.a.jwt"), 401)
    bad = {
        "expired": forge(claims(iat=int(time.time()) - 3600, exp=int(time.time()) - 60)),
        "alg none": forge(claims(), alg="none"),
        "HS512": forge(claims(), alg="HS512"),
        "wrong key": forge(claims(), secret="b" * 64),
        "wrong aud": forge(claims(aud="other")),
        "wrong iss": forge(claims(iss="evil")),
        "no sub": forge(claims(sub=None)),
        "no role": forge(claims(role=None)),
        "no exp": forge(claims(exp=None)),
    }
    good = forge(claims())
    h, p, sig = good.split(".")
    tampered_payload = b64(json.dumps(claims(role="admin", sub="mallory")).encode())
    bad["tampered payload"] = f"{h}.{tampered_payload}.{sig}"
    bad["tampered signature"] = f"{h}.{p}.{sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BB'}"
    for what, tok in bad.items():
        s, hd, body = call(base, "GET", "/api/v1/tenants", token=tok)
        assert s == 401, (what, s, body)
        problem(s, hd, body, 401)
    # The forged-but-valid token works: the checks above are what refused the others.
    assert call(base, "GET", "/api/v1/tenants", token=good)[0] == 200

    tok = admin_token(base)
    # Bodies: too large (httpd's 413), malformed, wrong types, unknown fields, not JSON.
    s, _, b = call(base, "POST", "/tenants", raw=b"{" + b" " * (1024 * 1024 + 10) + b"}", token=tok)
    assert s == 413, b
    problem(*call(base, "POST", "/tenants", raw=b'{"name": ', token=tok), 400)
    problem(*call(base, "POST", "/tenants", {"name": 5}, tok), 400, "name")
    problem(*call(base, "POST", "/tenants", {"name": "x-ok", "colour": "red"}, tok), 400, "colour")
    problem(*call(base, "POST", "/tenants", {"cpu_quota": "1"}, tok), 400, "name")
    problem(*call(base, "POST", "/tenants", {"name": "Bad_Name"}, tok), 400, "name")
    problem(*call(base, "POST", "/tenants", {"name": "admin"}, tok), 400, "name")
    problem(*call(base, "POST", "/tenants", {"name": "okname", "cpu_quota": "lots"}, tok), 400, "cpu_quota")
    problem(*call(base, "POST", "/tenants", [1, 2], tok), 400)
    problem(*call(base, "POST", "/tenants", raw=b"name=x", token=tok,
                  headers={"Content-Type": "application/x-www-form-urlencoded"}), 415)
    problem(*call(base, "GET", "/api/v1/tenants?limit=0", token=tok), 400, "limit")
    problem(*call(base, "GET", "/api/v1/tenants?limit=abc", token=tok), 400, "limit")
    problem(*call(base, "GET", "/api/v1/tenants?continue=zz", token=tok), 400, "continue")
    # Unknown API paths and methods.
    problem(*call(base, "GET", "/api/v1/nothing", token=tok), 404)
    s, h, b = call(base, "PUT", "/api/v1/tenants", {"name": "x"}, tok)
    problem(s, h, b, 405)
    assert "GET" in h["Allow"] and "POST" in h["Allow"]
    # Security headers on every answer.
    s, h, _ = call(base, "GET", "/api/v1/tenants", token=tok)
    assert h["X-Content-Type-Options"] == "nosniff" and h["Cache-Control"] == "no-store"


def test_rate_limit(api_operator):
    """10 logins per minute per address: the 11th within a minute gets 429, even with the right password.
    (A slow build, ASan's, may earn back an attempt while the first ten run: one refills every 6 s.)"""
    _, base = api_operator(CONTROLLERS)
    codes = []
    while 429 not in codes and len(codes) < 20:
        codes.append(call(base, "POST", "/auth/token", {"username": "admin", "password": "wrong-password"})[0])
    assert codes[:10] == [401] * 10 and codes[-1] == 429, codes
    s, h, b = call(base, "POST", "/auth/token", {"username": "admin", "password": API_ADMIN_PASSWORD})
    problem(s, h, b, 429)
    assert 1 <= int(h["Retry-After"]) <= 60


def test_seed_demo_over_http(api_operator):
    """The original README's demo with curl, as HTTP calls."""
    _, base = api_operator(CONTROLLERS, "--billing-period=2s")
    tok = admin_token(base)
    name = f"tenant-a-{uuid.uuid4().hex[:6]}"
    s, _, t = call(base, "POST", "/tenants", {"name": name, "cpu_quota": "500m", "memory_quota": "512Mi"}, tok)
    assert s == 201, t
    try:
        assert t["cpu_quota"] == "500m" and t["memory_quota"] == "512Mi" and t["status"] == "active"
        wait_namespace(name)
        ns = f"nimbus-{name}"
        q = kubectl_json("get", "resourcequota", "nimbus-quota", "-n", ns)
        assert q["spec"]["hard"]["requests.cpu"] == "500m"
        s, _, lst = call(base, "GET", "/tenants", token=tok)
        assert s == 200 and name in [x["id"] for x in lst["items"]]
        s, _, one = call(base, "GET", f"/tenants/{name}", token=tok)
        assert s == 200 and one["namespace_phase"] == "Active"

        s, h, w = call(base, "POST", f"/api/v1/tenants/{name}/workloads",
                       {"name": "web-server", "image": "nginx", "cpu": "200m", "memory": "256Mi", "replicas": 1}, tok)
        assert s == 201, w
        assert w["name"] == "web-server" and w["tenant"] == name and w["namespace"] == ns
        problem(*call(base, "POST", f"/api/v1/tenants/{name}/workloads",
                      {"name": "web-server", "image": "nginx", "cpu": "200m", "memory": "256Mi"}, tok), 409, "name")

        def ready():
            s, _, lst = call(base, "GET", "/api/v1/workloads", token=tok)
            mine = [x for x in lst["items"] if x["tenant"] == name and x["name"] == "web-server"]
            return mine and mine[0]["status"]["ready"] and mine[0]["status"]["readyReplicas"] == 1 and mine[0]
        w = wait_until(ready, 120, interval=1, what="the workload to be Ready over the API")
        assert w["status"]["phase"] in ("Running", "Progressing")
        pods = kubectl_json("get", "pods", "-n", ns)["items"]
        assert pods and all(p["spec"]["schedulerName"] == "nimbus-scheduler" and p["spec"].get("nodeName")
                            for p in pods)

        s, _, sched = call(base, "GET", "/api/v1/scheduler", token=tok)
        assert s == 200 and sched["nodes"]
        assert any(p["pod"].startswith(ns + "/") for p in sched["recent_placements"]), sched["recent_placements"]
        node = next(n for n in sched["nodes"] if n["name"] == pods[0]["spec"]["nodeName"])
        assert node["requested"]["cpu_milli"] >= 200 and node["allocatable"]["cpu_milli"] > 0

        # Scale through the scale subresource, then delete.
        s, _, sc = call(base, "PATCH", f"/api/v1/tenants/{name}/workloads/web-server", {"replicas": 2}, tok)
        assert s == 200 and sc["replicas"] == 2, sc
        wait_until(lambda: kubectl_json("get", "computerequest", "web-server", "-n", ns)["spec"]["replicas"] == 2,
                   30, what="spec.replicas 2")

        s, _, usage = call(base, "GET", "/billing/usage", token=tok)
        assert s == 200 and isinstance(usage["items"], list)
        s, _, inv = call(base, "GET", f"/billing/invoice/{name}", token=tok)
        assert s == 200 and inv["tenant_id"] == name and inv["currency"] == "USD" and not inv["issued"], inv

        def billed():
            s, _, u = call(base, "GET", "/billing/usage", token=tok)
            mine = [x for x in u["items"] if x["tenant_id"] == name]
            return mine and float(mine[0]["CPUMilliSeconds"]) > 0 and mine[0]
        wait_until(billed, 90, interval=2, what="non-zero usage over the API")
        s, _, inv = call(base, "GET", f"/billing/invoice/{name}", token=tok)
        assert s == 200 and float(inv["cpu_milli_seconds"]) > 0, inv
        problem(*call(base, "GET", f"/billing/invoice/{name}?from=2026-13-01&to=2026-12-01", token=tok), 400, "from")
        problem(*call(base, "GET", f"/billing/invoice/{name}?from=2026-11-01", token=tok), 400, "to")

        s, _, d = call(base, "DELETE", f"/api/v1/tenants/{name}/workloads/web-server", token=tok)
        assert s == 202 and d["status"] == "deleting"
        wait_until(lambda: kubectl("get", "computerequest", "web-server", "-n", ns, check=False).returncode != 0, 30,
                   what="the ComputeRequest to go")
        problem(*call(base, "GET", f"/api/v1/tenants/{name}/workloads/web-server", token=tok), 404)

        s, _, d = call(base, "DELETE", f"/tenants/{name}", token=tok)
        assert s == 202 and d["status"] == "deleting"
        wait_until(lambda: call(base, "GET", f"/tenants/{name}", token=tok)[0] == 404, 120, interval=1,
                   what="the tenant to be deleted")
    finally:
        cleanup(name)


def test_tenant_scoping(api_operator):
    """A tenant token sees and changes only its own tenant: others' objects are 404, admin actions 403."""
    _, base = api_operator(CONTROLLERS)
    admin = admin_token(base)
    a, akey = new_tenant(base, admin)
    b, bkey = new_tenant(base, admin)
    try:
        wait_namespace(a)
        wait_namespace(b)
        ta, tb = key_token(base, akey), key_token(base, bkey)
        spec = {"image": "nginx", "cpu": "100m", "memory": "64Mi", "replicas": 1}
        assert call(base, "POST", f"/api/v1/tenants/{a}/workloads", dict(spec, name="wa"), ta)[0] == 201
        assert call(base, "POST", f"/api/v1/tenants/{b}/workloads", dict(spec, name="wb"), admin)[0] == 201
        wait_until(lambda: call(base, "GET", f"/api/v1/tenants/{b}/workloads/wb", token=admin)[0] == 200, 30,
                   what="wb in the cache")
        wait_until(lambda: call(base, "GET", f"/api/v1/tenants/{a}/workloads/wa", token=ta)[0] == 200, 30,
                   what="wa in the cache")

        # Own objects.
        s, _, lst = call(base, "GET", "/tenants", token=ta)
        assert s == 200 and [x["id"] for x in lst["items"]] == [a]
        assert call(base, "GET", f"/tenants/{a}", token=ta)[0] == 200
        s, _, wl = call(base, "GET", "/api/v1/workloads", token=ta)
        assert s == 200 and {(x["tenant"], x["name"]) for x in wl["items"]} == {(a, "wa")}
        assert call(base, "GET", f"/api/v1/tenants/{a}/workloads", token=ta)[0] == 200
        assert call(base, "GET", "/api/v1/autoscaler", token=ta)[0] == 200
        assert call(base, "GET", f"/api/v1/tenants/{a}/keys", token=ta)[0] == 200

        # Another tenant's objects: 404, as if they did not exist.
        for method, path, body in (
            ("GET", f"/tenants/{b}", None),
            ("GET", f"/api/v1/tenants/{b}", None),
            ("DELETE", f"/tenants/{b}", None),
            ("GET", f"/api/v1/tenants/{b}/workloads", None),
            ("POST", f"/api/v1/tenants/{b}/workloads", dict(spec, name="intruder")),
            ("GET", f"/api/v1/tenants/{b}/workloads/wb", None),
            ("PATCH", f"/api/v1/tenants/{b}/workloads/wb", {"replicas": 3}),
            ("DELETE", f"/api/v1/tenants/{b}/workloads/wb", None),
            ("GET", f"/api/v1/tenants/{b}/keys", None),
            ("POST", f"/api/v1/tenants/{b}/keys", None),
            ("DELETE", f"/api/v1/tenants/{b}/keys", None),
            ("GET", f"/api/v1/workloads?tenant={b}", None),
            ("GET", "/tenants/does-not-exist", None),
        ):
            s, h, body_ = call(base, method, path, body, ta)
            problem(s, h, body_, 404)
        problem(*call(base, "GET", f"/billing/invoice/{b}", token=ta), 404)
        s, _, u = call(base, "GET", "/billing/usage", token=ta)
        assert s == 200 and all(x["tenant_id"] == a for x in u["items"])
        assert call(base, "GET", f"/billing/invoice/{a}", token=ta)[0] == 200
        # The path alone does not decide: B's workload under A's path is not found either.
        problem(*call(base, "GET", f"/api/v1/tenants/{a}/workloads/wb", token=ta), 404)
        # Admin actions: 403 for a tenant token.
        problem(*call(base, "POST", "/tenants", {"name": "sneaky"}, ta), 403)
        problem(*call(base, "DELETE", f"/tenants/{a}", token=ta), 403)
        problem(*call(base, "GET", "/api/v1/scheduler", token=ta), 403)
        # B's workload is untouched; A's own changes work.
        assert kubectl_json("get", "computerequest", "wb", "-n", f"nimbus-{b}")["spec"]["replicas"] == 1
        assert call(base, "PATCH", f"/api/v1/tenants/{a}/workloads/wa", {"replicas": 2}, ta)[0] == 200

        # Admin sees both.
        s, _, wl = call(base, "GET", "/api/v1/workloads", token=admin)
        names = {(x["tenant"], x["name"]) for x in wl["items"]}
        assert {(a, "wa"), (b, "wb")} <= names
        s, _, wl = call(base, "GET", f"/api/v1/workloads?tenant={b}", token=admin)
        assert {(x["tenant"], x["name"]) for x in wl["items"]} == {(b, "wb")}

        # Key rotation: the old key stops working, the new one works; revocation.
        s, _, k = call(base, "POST", f"/api/v1/tenants/{a}/keys", token=ta)
        assert s == 201 and k["api_key"] != akey
        problem(*call(base, "POST", "/auth/token", {"api_key": akey}), 401)
        key_token(base, k["api_key"])
        s, _, keys = call(base, "GET", f"/api/v1/tenants/{a}/keys", token=admin)
        assert len(keys["items"]) == 2 and sum(1 for x in keys["items"] if x["revoked_at"] is None) == 1
        s, _, r = call(base, "DELETE", f"/api/v1/tenants/{a}/keys", token=admin)
        assert s == 200 and r["revoked"] == 1
        s, _, body_ = call(base, "POST", "/auth/token", {"api_key": k["api_key"]})
        problem(s, _, body_, 401)
        assert "revoked" in body_["detail"]
    finally:
        cleanup(a, b)


def test_usage_history(api_operator):
    """GET /api/v1/billing/usage/history sums the usage rows in PostgreSQL per tenant and bucket, scoped."""
    _, base = api_operator(CONTROLLERS)
    admin = admin_token(base)
    a, akey = new_tenant(base, admin)
    b = f"hist-{uuid.uuid4().hex[:8]}"  # usage outlives tenants: rows need no tenant row
    t0 = 1_700_000_000  # 2023-11-14T22:13:20Z
    rows = [(a, "p1", 0, 10, "1000", str(64 * 2**20)), (a, "p1", 10, 70, "500", "0"), (a, "p2", 60, 75, "250", "0"),
            (a, "p1", 70, 130, "7", "0"), (b, "q1", 0, 20, "42", "0")]
    with psycopg.connect(host=os.environ["DB_HOST"], port=os.environ["DB_PORT"], dbname=os.environ["DB_NAME"],
                         user=os.environ["DB_USER"], password=os.environ.get("DB_PASSWORD"), autocommit=True) as db:
        for tenant, pod, start, end, cpu, mem in rows:
            db.execute("INSERT INTO billing_usage (tenant_id, pod_uid, window_start, window_end, cpu_milli_seconds, "
                       "memory_byte_seconds) VALUES (%s, %s, to_timestamp(%s), to_timestamp(%s), %s, %s)",
                       (tenant, f"{pod}-{uuid.uuid4().hex[:6]}", t0 + start, t0 + end, cpu, mem))
    try:
        q = "/api/v1/billing/usage/history?from=2023-11-14T22:13:20Z&to=2023-11-14T22:15:20Z&step=1m"
        s, _, h = call(base, "GET", q, token=admin)
        assert s == 200 and h["step_seconds"] == 60 and h["from"].startswith("2023-11-14T22:13:20"), h
        by = {x["tenant_id"]: x["points"] for x in h["items"]}
        # Rows count in the bucket of their window end; the one ending at `to` is outside.
        assert [(p["time"][:19], p["CPUMilliSeconds"]) for p in by[a]] == [
            ("2023-11-14T22:13:20", "1000.000000"), ("2023-11-14T22:14:20", "750.000000")], by[a]
        assert by[a][0]["MemoryMBSeconds"] == "64.000000"
        assert [p["CPUMilliSeconds"] for p in by[b]] == ["42.000000"]
        ta = key_token(base, akey)
        s, _, h = call(base, "GET", q, token=ta)
        assert s == 200 and [x["tenant_id"] for x in h["items"]] == [a], h
        problem(*call(base, "GET", q + f"&tenant={b}", token=ta), 404)
        s, _, h = call(base, "GET", q + f"&tenant={b}", token=admin)
        assert [x["tenant_id"] for x in h["items"]] == [b]
        problem(*call(base, "GET", q.replace("step=1m", "step=1w"), token=admin), 400, "step")
        problem(*call(base, "GET", "/api/v1/billing/usage/history?from=2023-01-01&to=2023-12-01&step=60",
                      token=admin), 400, "step")
        problem(*call(base, "GET", "/api/v1/billing/usage/history?from=2023-12-01&to=2023-01-01", token=admin),
                400, "to")
        s, _, h = call(base, "GET", "/api/v1/billing/usage/history", token=ta)  # the last hour by the minute
        assert s == 200 and h["step_seconds"] == 60 and h["items"] == [], h
    finally:
        with psycopg.connect(host=os.environ["DB_HOST"], port=os.environ["DB_PORT"], dbname=os.environ["DB_NAME"],
                             user=os.environ["DB_USER"], password=os.environ.get("DB_PASSWORD"),
                             autocommit=True) as db:
            db.execute("DELETE FROM billing_usage WHERE tenant_id IN (%s, %s)", (a, b))
        cleanup(a)


def test_pagination(api_operator):
    _, base = api_operator(CONTROLLERS)
    tok = admin_token(base)
    made = [new_tenant(base, tok)[0] for _ in range(3)]
    try:
        seen, cont = [], None
        for _ in range(100):
            path = "/api/v1/tenants?limit=2" + (f"&continue={cont}" if cont else "")
            s, _, page = call(base, "GET", path, token=tok)
            assert s == 200 and len(page["items"]) <= 2
            seen += [x["id"] for x in page["items"]]
            cont = page["continue"]
            if not cont:
                break
        assert seen == sorted(seen) and len(seen) == len(set(seen)) and set(made) <= set(seen)
    finally:
        cleanup(*made)


def test_cors_and_metrics(api_operator):
    mport = free_port()
    _, base = api_operator(CONTROLLERS, "--cors-origin=http://dash.example:3000",
                           f"--metrics-bind-address=127.0.0.1:{mport}")
    s, h, _ = call(base, "OPTIONS", "/api/v1/tenants", headers={"Origin": "http://dash.example:3000",
                                                               "Access-Control-Request-Method": "GET"})
    assert s == 204 and h["Access-Control-Allow-Origin"] == "http://dash.example:3000"
    assert "Authorization" in h["Access-Control-Allow-Headers"]
    problem(*call(base, "OPTIONS", "/api/v1/tenants", headers={"Origin": "http://evil.example"}), 403)
    tok = admin_token(base)
    s, h, _ = call(base, "GET", "/api/v1/tenants", token=tok, headers={"Origin": "http://evil.example"})
    assert s == 200 and "Access-Control-Allow-Origin" not in h
    s, h, _ = call(base, "GET", "/api/v1/tenants", token=tok, headers={"Origin": "http://dash.example:3000"})
    assert h["Access-Control-Allow-Origin"] == "http://dash.example:3000"
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10) as r:
        text = r.read().decode()
    assert 'nimbus_http_requests_total{route="/api/v1/tenants",code="200"}' in text
    assert 'nimbus_http_requests_total{route="/auth/token",code="200"}' in text
    assert 'nimbus_http_request_duration_seconds_count{route="/api/v1/tenants"}' in text


def test_openapi_describes_every_answer(api_operator):
    """Each documented operation answers (admin token) with a status it documents, never 5xx."""
    _, base = api_operator(CONTROLLERS)
    s, _, doc = call(base, "GET", "/openapi.json")
    assert s == 200 and doc["openapi"].startswith("3.")
    tok = admin_token(base)
    name, _ = new_tenant(base, tok)
    try:
        wait_namespace(name)
        for path, ops in doc["paths"].items():
            for method, op in ops.items():
                if path == "/api/v1/events":
                    continue
                concrete = path.replace("{id}", name).replace("{tenant}", name).replace("{name}", "missing")
                body = {"api_key": "nmbk_0123456789abcdef_" + "A" * 43} if "auth/token" in path else None
                if method == "post" and concrete.endswith("/tenants"):
                    body = {"name": f"api-{uuid.uuid4().hex[:8]}"}
                    cleanup(body["name"])
                if method == "post" and concrete.endswith("/workloads"):
                    body = {"name": f"w{uuid.uuid4().hex[:6]}", "image": "nginx", "cpu": "10m", "memory": "16Mi"}
                if method == "patch":
                    body = {"replicas": 1}
                if method == "delete" and concrete.endswith(f"/tenants/{name}"):
                    continue  # deleting the tenant here would starve the other calls
                s, _, b = call(base, method.upper(), concrete, body, tok)
                assert s < 500, (method, concrete, s, b)
                assert str(s) in op["responses"], (method, concrete, s, b, list(op["responses"]))
    finally:
        cleanup(name)


def ws_connect(base, token, query=""):
    url = base.replace("http://", "ws://") + "/api/v1/events" + query
    return websocket.create_connection(url, header=[f"Authorization: Bearer {token}"], timeout=10)


def ws_ticket(base, ticket):
    url = base.replace("http://", "ws://") + "/api/v1/events"
    return websocket.create_connection(url, subprotocols=["nimbus", f"ticket.{ticket}"], timeout=10)


def ws_refusal(ws):
    """The close code and reason of a connection the server refuses after the upgrade."""
    opcode, data = ws.recv_data(control_frame=True)
    ws.close()
    assert opcode == websocket.ABNF.OPCODE_CLOSE, (opcode, data)
    return int.from_bytes(data[:2], "big"), data[2:].decode()


def ws_messages(ws, until, timeout=60):
    """Read messages until until(list) is true; returns them."""
    got, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline and not until(got):
        try:
            got.append(json.loads(ws.recv()))
        except websocket.WebSocketTimeoutException:
            continue
    return got


def test_event_stream(api_operator):
    _, base = api_operator(CONTROLLERS)
    admin = admin_token(base)
    a, akey = new_tenant(base, admin)
    b, _ = new_tenant(base, admin)
    try:
        wait_namespace(a)
        wait_namespace(b)
        ta = key_token(base, akey)
        # No token, or a bad one: the upgrade is refused or the socket closed at once.
        for hdr in ([], ["Authorization: Bearer nope"]):
            with pytest.raises(Exception):
                w = websocket.create_connection(base.replace("http://", "ws://") + "/api/v1/events", header=hdr,
                                                timeout=5)
                w.recv()
                w.recv()
        ws = ws_connect(base, ta)
        hello = json.loads(ws.recv())
        assert hello["type"] == "hello" and hello["stream"]
        spec = {"image": "nginx", "cpu": "100m", "memory": "64Mi", "replicas": 1}
        assert call(base, "POST", f"/api/v1/tenants/{b}/workloads", dict(spec, name="other"), admin)[0] == 201
        assert call(base, "POST", f"/api/v1/tenants/{a}/workloads", dict(spec, name="mine"), ta)[0] == 201

        def saw_mine(msgs):
            return any(m.get("type") == "placement" and m["namespace"] == f"nimbus-{a}" for m in msgs)
        got = ws_messages(ws, saw_mine)
        assert saw_mine(got), got
        kinds = {(m["type"], m.get("name")) for m in got}
        assert ("workload", "mine") in kinds and any(t == "pod" for t, _ in kinds), kinds
        assert all(m["tenant"] == a for m in got if "seq" in m and m.get("type") != "hello"), got
        seqs = [m["seq"] for m in got]
        assert seqs == sorted(seqs)
        last = seqs[-1]
        ws.close()

        # Missed events come back on reconnect with ?since= (and none of B's).
        assert call(base, "PATCH", f"/api/v1/tenants/{a}/workloads/mine", {"replicas": 2}, ta)[0] == 200
        time.sleep(3)
        ws = ws_connect(base, ta, f"?since={last}&stream={hello['stream']}")
        got = ws_messages(ws, lambda msgs: any(m.get("type") == "workload" and m["object"]["replicas"] == 2
                                               for m in msgs))
        ws.close()
        assert got[0]["type"] == "hello"
        assert not any(m["type"] == "reset" for m in got), got
        replay = [m for m in got if m["type"] not in ("hello", "reset")]
        assert replay and all(m["seq"] > last and m["tenant"] == a for m in replay), replay
        assert any(m["type"] == "workload" and m["object"]["replicas"] == 2 for m in replay), replay

        # A seq from another stream gets a reset first.
        ws = ws_connect(base, ta, "?since=5&stream=0000000000000000")
        assert json.loads(ws.recv())["type"] == "hello"
        assert json.loads(ws.recv())["type"] == "reset"
        ws.close()
        # Browsers get a single-use ticket and offer it as a subprotocol; the
        # stream is scoped as the token that bought it.
        assert call(base, "POST", "/api/v1/events/ticket")[0] == 401
        s, _, t = call(base, "POST", "/api/v1/events/ticket", token=ta)
        assert s == 200 and 0 < t["expires_in"] <= 30 and ta not in t["ticket"], t
        ws = ws_ticket(base, t["ticket"])
        assert ws.subprotocol == "nimbus"
        assert json.loads(ws.recv())["type"] == "hello"
        assert call(base, "PATCH", f"/api/v1/tenants/{b}/workloads/other", {"replicas": 2}, admin)[0] == 200
        assert call(base, "PATCH", f"/api/v1/tenants/{a}/workloads/mine", {"replicas": 1}, ta)[0] == 200
        got = ws_messages(ws, lambda msgs: any(m.get("type") == "workload" and m["object"]["replicas"] == 1
                                               for m in msgs))
        ws.close()
        assert got and all(m["tenant"] == a for m in got), got
        # Used once, forged, or a token in the URL: closed with 1008 and a reason.
        code, why = ws_refusal(ws_ticket(base, t["ticket"]))
        assert code == 1008 and "ticket was refused" in why, why
        _, _, t2 = call(base, "POST", "/api/v1/events/ticket", token=ta)
        forged = t2["ticket"].replace(f".t.{a}.", f".t.{b}.")
        code, why = ws_refusal(ws_ticket(base, forged))
        assert code == 1008 and "ticket was refused" in why, why
        ws = websocket.create_connection(base.replace("http://", "ws://") + f"/api/v1/events?access_token={ta}",
                                         timeout=10)
        code, why = ws_refusal(ws)
        assert code == 1008 and "token in the URL is refused" in why, why
        ws = websocket.create_connection(base.replace("http://", "ws://") + "/api/v1/events", timeout=10)
        code, why = ws_refusal(ws)
        assert code == 1008 and "no credential" in why, why
    finally:
        cleanup(a, b)


def test_slow_database_stalls_no_other_route(api_operator):
    """Handlers run on worker threads, not on the event loop: while requests wait on a locked tenants table (a
    stalled database), the OpenAPI document, cache-only routes, token checks and the websocket event stream still
    answer, and the waiting requests complete once the lock goes."""
    import concurrent.futures
    import psycopg
    _, base = api_operator(CONTROLLERS)
    admin = admin_token(base)
    name, _ = new_tenant(base, admin)
    pool = concurrent.futures.ThreadPoolExecutor(3)
    try:
        wait_namespace(name)
        ws = ws_connect(base, admin)
        assert json.loads(ws.recv())["type"] == "hello"
        with psycopg.connect(host=os.environ["DB_HOST"], port=os.environ["DB_PORT"], dbname=os.environ["DB_NAME"],
                             user=os.environ["DB_USER"], password=os.environ["DB_PASSWORD"]) as db:
            db.execute("LOCK TABLE tenants IN ACCESS EXCLUSIVE MODE")  # held until the block ends
            slow = [pool.submit(call, base, "GET", "/tenants", None, admin) for _ in range(3)]
            wait_until(lambda: db.execute("SELECT count(*) FROM pg_locks WHERE relation = 'tenants'::regclass "
                                          "AND NOT granted").fetchone()[0] >= 3, 30, interval=0.1,
                       what="three API requests waiting on the locked table")
            assert call(base, "GET", "/openapi.json")[0] == 200
            assert call(base, "GET", "/api/v1/workloads", token=admin)[0] == 200
            problem(*call(base, "GET", "/api/v1/tenants", token="not.a.jwt"), 401)
            # The API's own create checks the tenant's row, which is locked: create it with kubectl.
            kubectl("apply", "-f", "-", input=json.dumps({
                "apiVersion": "nimbus.io/v1", "kind": "ComputeRequest",
                "metadata": {"name": "during", "namespace": f"nimbus-{name}"},
                "spec": {"tenantId": name, "image": "nginx", "cpu": "10m", "memory": "16Mi", "replicas": 1}}))
            got = ws_messages(ws, lambda msgs: any(m.get("type") == "workload" and m.get("name") == "during"
                                                   for m in msgs), timeout=30)
            assert any(m.get("type") == "workload" and m.get("name") == "during" for m in got), got
            assert not any(f.done() for f in slow)
            db.rollback()
        for f in slow:
            s, _, b = f.result(timeout=30)
            assert s == 200 and any(t["id"] == name for t in b["items"]), (s, b)
        ws.close()
    finally:
        pool.shutdown(wait=False)
        cleanup(name)


def test_tls(api_operator, tmp_path):
    """--api-tls-cert/--api-tls-key serve HTTPS (and the websocket as wss)."""
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    op, base = api_operator(CONTROLLERS, f"--api-tls-cert={cert}", f"--api-tls-key={key}")
    https = base.replace("http://", "https://")
    ctx = ssl.create_default_context(cafile=str(cert))
    req = urllib.request.Request(https + "/auth/token", method="POST", headers={"Content-Type": "application/json"},
                                 data=json.dumps({"username": "admin", "password": API_ADMIN_PASSWORD}).encode())
    with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
        tok = json.loads(r.read())["token"]
    assert any(line.get("msg") == "serving the REST API" and line.get("tls") == "on" for line in op.lines())
    ws = websocket.create_connection(https.replace("https://", "wss://") + "/api/v1/events",
                                     header=[f"Authorization: Bearer {tok}"], timeout=10,
                                     sslopt={"ca_certs": str(cert)})
    assert json.loads(ws.recv())["type"] == "hello"
    ws.close()
    # Plain HTTP to the TLS port gets no API answer.
    with pytest.raises(Exception):
        urllib.request.urlopen(base + "/openapi.json", timeout=10)


def test_schemathesis_no_server_errors(api_operator):
    """Property-based requests from openapi.json (schemathesis, admin token): never a 5xx.

    NUL bytes in generated URLs are left out: libwebsockets drops such a
    request's connection before the API sees it."""
    st = os.path.join(os.path.dirname(sys.executable), "st")
    assert os.path.exists(st), "schemathesis is missing: hack/setup installs hack/requirements-test.txt"
    _, base = api_operator(CONTROLLERS)
    tok = admin_token(base)
    proc = subprocess.run([st, "run", base + "/openapi.json", "-H", f"Authorization: Bearer {tok}",
                           "--checks", "not_a_server_error", "--max-examples", "20", "--workers", "1",
                           "--exclude-operation-id", "events", "--generation-allow-x00", "false",
                           "--generation-deterministic",
                           "--request-timeout", "30"],
                          capture_output=True, text=True, timeout=900, env=dict(os.environ, NO_COLOR="1"))
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "passed" in proc.stdout, proc.stdout[-2000:]
