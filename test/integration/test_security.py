"""Security review of the REST API as tests (issue 11's list): no secrets in the log, constant-time comparison of
secrets, SQL only through parameters, websocket Origin checks, response headers, the login rate limit.

The source checks read operator/*.c; the others run nimbus-operator against the real cluster and PostgreSQL."""
import glob
import http.client
import json
import os
import re
import socket
import urllib.parse
import uuid

import pytest
import websocket

from conftest import API_ADMIN_PASSWORD, API_JWT_SECRET, kubectl
from test_api import CONTROLLERS, admin_token, call, forge, claims, key_token, new_tenant, problem, ws_connect

ROOT = os.environ.get("NIMBUS_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
SOURCES = sorted(glob.glob(os.path.join(ROOT, "operator", "*.c")) + glob.glob(os.path.join(ROOT, "informer", "*.c")))


def source(path):
    """The C text of path with comments and string literals blanked (so that prose and messages do not match)."""
    with open(path) as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", lambda m: " " * len(m.group()), text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return text


def calls(text, names):
    """(function, argument text) of each call of one of names in text, arguments up to the matching ')'."""
    out = []
    for m in re.finditer(r"\b(" + "|".join(names) + r")\s*\(", text):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        out.append((m.group(1), text[m.end():i - 1]))
    return out


# ---- source checks ------------------------------------------------------------------------------------------------

LIBPQ_QUERY = ["PQexec", "PQexecParams", "PQprepare", "PQexecPrepared", "PQsendQuery", "PQsendQueryParams",
               "PQsendPrepare", "PQsendQueryPrepared", "PQdescribePrepared"]
# db.c's calls and where their SQL comes from. A new call must be added here after a review of its SQL's origin.
DB_C_QUERY_CALLS = {
    ("PQprepare", "c, s->name, s->sql, 0, NULL"): "statements registered by db_prepare(), literals",
    ("PQexec", "c, sql"): "LISTEN of a channel quoted by PQescapeIdentifier (reconnect)",
    ("PQexecParams", "d->conn, sql, nparams, NULL, values, NULL, NULL, 0"): "db_exec_params(), a literal",
    ("PQprepare", "d->conn, name, sql, 0, NULL"): "db_prepare(), a literal",
    ("PQexecPrepared", "d->conn, name, nparams, values, NULL, NULL, 0"): "a prepared statement",
    ("PQexec", "d->conn, m->sql"): "the embedded migrations (operator/migrations/*.sql)",
    ("PQexec", "d->conn, \"ROLLBACK\""): "a literal",
    ("PQexec", "d->conn, sql"): "LISTEN of a channel quoted by PQescapeIdentifier",
}


def test_sql_reaches_libpq_only_through_db_c():
    """libpq's query functions are called only in db.c, each with SQL from a reviewed origin; the rest of the code
    goes through db_exec_params()/db_prepare(), which only compile with a string literal (test_db_sql_variable)
    and pass user input as $n parameters; and no SQL text is ever formatted with printf."""
    seen = set()
    for path in SOURCES:
        text = source(path)
        for fn, args in calls(text, LIBPQ_QUERY):
            args = " ".join(args.split())
            if os.path.basename(path) != "db.c":
                pytest.fail(f"{path} calls {fn}({args}) directly; go through db_exec_params() or db_prepare()")
            assert (fn, args) in DB_C_QUERY_CALLS, f"db.c: unreviewed {fn}({args}); check its SQL's origin"
            seen.add((fn, args))
        if os.path.basename(path) != "db.c":
            for fn, args in calls(text, ["db_exec_params_literal", "db_prepare_literal"]):
                pytest.fail(f"{path} calls {fn} directly, bypassing the literal check of its macro")
    assert seen == set(DB_C_QUERY_CALLS), f"stale entries: {set(DB_C_QUERY_CALLS) - seen}"

    sql_start = re.compile(r'^\s*"\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|LISTEN|NOTIFY|WITH|COPY)\b', re.I)
    for path in SOURCES:
        with open(path) as f:
            raw = f.read()
        for fn, args in calls(raw, ["snprintf", "sprintf", "asprintf", "vsnprintf"]):
            fmt = args.split(",", 2)[2] if fn in ("snprintf", "vsnprintf") else args.split(",", 1)[1]
            # db.c's LISTEN of an identifier quoted by PQescapeIdentifier, and its messages about it.
            listen = os.path.basename(path) == "db.c" and fmt.strip().startswith('"LISTEN %s')
            if sql_start.match(fmt) and not listen:
                pytest.fail(f"{path}: SQL built with {fn}({' '.join(args.split())[:120]})")


SECRET_NAME = re.compile(r"secret|passw|digest|hmac|signature|\bmac\b|\bwant\b|\bgot\b|hash\b|api_key|token", re.I)


def test_secrets_are_compared_in_constant_time():
    """Every comparison whose operands are secrets, hashes or MACs uses CRYPTO_memcmp; a variable-time memcmp or
    strcmp on them would tell an attacker by timing how much of a guess was right. (Comparisons with a public
    constant, such as a hash's "pbkdf2-sha256$" prefix, are not secret.) libjwt 1.10 compares JWT signatures
    with its own constant-time jwt_strcmp."""
    constant_time = 0
    for path in SOURCES:
        text = source(path)
        for fn, args in calls(text, ["memcmp", "strcmp", "strncmp", "strcasecmp", "strncasecmp", "bcmp",
                                     "CRYPTO_memcmp"]):
            operands = [a.strip() for a in args.split(",")[:2]]
            if not any(SECRET_NAME.search(o) for o in operands):
                continue
            if fn == "CRYPTO_memcmp":
                constant_time += 1
                continue
            public = any(re.fullmatch(r"[A-Z][A-Z0-9_]*", o) for o in operands)
            assert public, f"{path}: {fn}({args.strip()}) compares a secret in variable time; use CRYPTO_memcmp"
    assert constant_time >= 1  # auth_verify_secret: password and API key hashes


# ---- against a running operator -----------------------------------------------------------------------------------

def test_no_secrets_in_the_log(api_operator):
    """Log in with a password, a wrong password, API keys (created, rotated, revoked, a made-up one), use the tokens
    on routes and the event stream, then search the operator's whole log for any of those values."""
    op, base = api_operator(CONTROLLERS)
    wrong_password = "wrong-" + uuid.uuid4().hex
    assert call(base, "POST", "/auth/token", {"username": "admin", "password": wrong_password})[0] == 401
    admin = admin_token(base)
    name, key1 = new_tenant(base, admin)
    try:
        t1 = key_token(base, key1)
        s, _, b = call(base, "POST", f"/api/v1/tenants/{name}/keys", token=admin)
        assert s in (200, 201), b
        key2 = b["api_key"]
        assert call(base, "POST", "/auth/token", {"api_key": key1})[0] == 401  # rotated away
        t2 = key_token(base, key2)
        fake_key = "nmbk_0123456789abcdef_" + uuid.uuid4().hex + uuid.uuid4().hex[:11]
        assert call(base, "POST", "/auth/token", {"api_key": fake_key})[0] == 401
        for tok in (admin, t1, t2):
            assert call(base, "GET", "/api/v1/tenants", token=tok)[0] == 200
        bad_token = forge(claims(), secret="x" * 40)
        assert call(base, "GET", "/api/v1/tenants", token=bad_token)[0] == 401
        ws = ws_connect(base, t2)
        assert json.loads(ws.recv())["type"] == "hello"
        ws.close()
        assert call(base, "DELETE", f"/api/v1/tenants/{name}/keys", token=admin)[0] in (200, 204)
    finally:
        kubectl("delete", "namespace", f"nimbus-{name}", "--wait=false", "--ignore-not-found", check=False)
    op.stop()
    text = op.text()
    assert "login refused" in text  # the log did record the failed logins, without their secrets
    secrets = {"admin password": API_ADMIN_PASSWORD, "wrong password": wrong_password, "JWT_SECRET": API_JWT_SECRET,
               "first API key": key1, "rotated API key": key2, "made-up API key": fake_key, "admin token": admin,
               "tenant token": t1, "second tenant token": t2, "forged token": bad_token}
    if os.environ.get("DB_PASSWORD"):
        secrets["DB_PASSWORD"] = os.environ["DB_PASSWORD"]
    for what, value in secrets.items():
        assert value not in text, f"the {what} is in the operator's log"
        # Also no recognisable part of it: a key's secret half, a token's signature.
        for part in (value.rsplit("_", 1)[-1], value.rsplit(".", 1)[-1]):
            if len(part) >= 16:
                assert part not in text, f"part of the {what} is in the operator's log"


def test_injection_attempts_change_nothing(api_operator):
    """SQL metacharacters through every kind of input the database sees: credentials, names, path and query
    parameters, continue tokens. Each is refused or treated as data; the tenants stay as they were and the server
    never reports an SQL syntax error. (Each payload's logins come from an address of its own, 127.0.0.N, to stay
    under the login rate limit.)"""
    op, base = api_operator(CONTROLLERS)
    admin = admin_token(base)
    name, key = new_tenant(base, admin)
    try:
        before = [t["id"] for t in call(base, "GET", "/api/v1/tenants?limit=1000", token=admin)[2]["items"]]
        payloads = ["' OR '1'='1", "admin'--", "x'; DROP TABLE tenants; --", "\" OR 1=1 --",
                    "1); DELETE FROM api_keys;--"]
        for i, p in enumerate(payloads):
            ip = f"127.0.0.{10 + i}"
            assert login_from(base, ip, {"username": p, "password": p})[0] == 401
            assert login_from(base, ip, {"username": "admin", "password": p})[0] == 401
            assert login_from(base, ip, {"api_key": "nmbk_0123456789abcdef_" + p})[0] == 401
            problem(*call(base, "POST", "/tenants", {"name": p}, admin), 400, "name")
            q = urllib.parse.quote(p, safe="")
            for path in (f"/tenants/{q}", f"/billing/invoice/{q}", f"/api/v1/tenants/{q}/workloads",
                         f"/api/v1/workloads?tenant={q}", f"/billing/invoice/{name}?from={q}",
                         f"/api/v1/tenants?continue={p.encode().hex()}"):
                s, _, b = call(base, "GET", path, token=admin)
                assert s in (200, 400, 404), (path, s, b)
        after = [t["id"] for t in call(base, "GET", "/api/v1/tenants?limit=1000", token=admin)[2]["items"]]
        assert after == before and name in after
        assert key_token(base, key)  # the API keys are all still there
        assert "42601" not in op.text() and "syntax error" not in op.text()
    finally:
        kubectl("delete", "namespace", f"nimbus-{name}", "--wait=false", "--ignore-not-found", check=False)


def test_websocket_origin(api_operator):
    """A browser page from a foreign origin cannot open the event stream with the user's token (cross-site
    websocket hijacking): its upgrade is refused with 403. Same-origin pages, the configured dashboard origin and
    non-browser clients (no Origin) are served."""
    _, base = api_operator(CONTROLLERS, "--cors-origin=http://dash.example:3000")
    admin = admin_token(base)
    url = base.replace("http://", "ws://") + "/api/v1/events"
    hdr = [f"Authorization: Bearer {admin}"]
    for origin in ("http://evil.example", "null", base.replace("127.0.0.1", "localhost"), "http://dash.example"):
        with pytest.raises(websocket.WebSocketBadStatusException) as err:
            websocket.create_connection(url, header=hdr, origin=origin, timeout=10)
        assert err.value.status_code == 403, origin
    for origin in (base, "http://dash.example:3000", None):
        ws = websocket.create_connection(url, header=hdr, timeout=10, **({"origin": origin} if origin else
                                                                         {"suppress_origin": True}))
        assert json.loads(ws.recv())["type"] == "hello", origin
        ws.close()


def raw_request(base, data):
    host, port = base.replace("http://", "").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    return out.decode(errors="replace")


def test_response_headers(api_operator):
    """Every answer, the API's, httpd's own refusals and libwebsockets' error pages alike: no server software or
    version, nosniff, no framing, no referrer; API answers are not cached by browsers."""
    _, base = api_operator(CONTROLLERS)
    admin = admin_token(base)
    answers = {
        "API 200": call(base, "GET", "/api/v1/tenants", token=admin)[1],
        "API 401": call(base, "GET", "/api/v1/tenants")[1],
        "API 404": call(base, "GET", "/api/v1/nothing", token=admin)[1],
        "openapi": call(base, "GET", "/openapi.json")[1],
        "no dashboard 404": call(base, "GET", "/index.html")[1],
    }
    for what, h in answers.items():
        assert h["Server"] == "nimbus", (what, h["Server"])
        assert h["X-Content-Type-Options"] == "nosniff", what
        assert h["X-Frame-Options"] == "DENY", what
        assert h["Referrer-Policy"] == "no-referrer", what
        assert h["Cache-Control"] == "no-store", what
    for what, req in {"chunked body (httpd's 411)": b"POST /tenants HTTP/1.1\r\nHost: x\r\n"
                                                    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                      "bad Content-Length (httpd's 400)": b"POST /tenants HTTP/1.1\r\nHost: x\r\n"
                                                          b"Content-Length: 1x\r\n\r\n",
                      "headers over 8 KiB (libwebsockets)": b"GET /openapi.json HTTP/1.1\r\nHost: x\r\nX-Big: "
                                                            + b"a" * 10000 + b"\r\n\r\n"}.items():
        out = raw_request(base, req)
        head = out.split("\r\n\r\n", 1)[0].lower()
        if not head.startswith("http/1.1"):
            assert out == "", (what, out[:200])  # closed without an answer: nothing to leak
            continue
        assert "libwebsockets" not in head and not re.search(r"^server: .*\d", head, re.M), (what, head)
        assert "x-content-type-options: nosniff" in head, (what, head)
    assert "libwebsockets" not in json.dumps(call(base, "GET", "/api/v1/nothing", token=admin)[2])


def login_from(base, source_ip, body):
    host, port = base.replace("http://", "").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30, source_address=(source_ip, 0))
    conn.request("POST", "/auth/token", json.dumps(body), {"Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    conn.close()
    return r.status, r.getheader("Retry-After")


def test_login_rate_limit_is_per_address(api_operator):
    """POST /auth/token: after 10 attempts in a minute an address gets 429 with Retry-After, for every credential
    (password or API key); another address is not affected."""
    _, base = api_operator(CONTROLLERS)
    codes = []
    while 429 not in codes and len(codes) < 20:
        codes.append(login_from(base, "127.0.0.1", {"api_key": "nmbk_0123456789abcdef_" + "A" * 43})[0])
    assert codes[:10] == [401] * 10 and codes[-1] == 429, codes
    s, retry = login_from(base, "127.0.0.1", {"username": "admin", "password": API_ADMIN_PASSWORD})
    assert s == 429 and 1 <= int(retry) <= 60
    assert login_from(base, "127.0.0.2", {"username": "admin", "password": API_ADMIN_PASSWORD})[0] == 200
