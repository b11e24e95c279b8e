#!/usr/bin/env python3
"""A stand-in apiserver for testing kube_client over real TLS.

Usage: fake_apiserver.py DIR

Generates with openssl in DIR: ca.crt/ca.key (the cluster CA), server.crt/key
(for IP 127.0.0.1), client.crt/key (signed by the CA), other-ca.crt (a CA that
signed nothing here). Then serves HTTPS on 127.0.0.1 at a free port, requiring a
client certificate signed by ca.crt, prints "READY <port>" on stdout and runs
until killed. Responses are canned; see ROUTES below.
"""
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

connections = 0
connections_lock = threading.Lock()


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_certs(d):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for name, cn in (("ca", "fake-apiserver-ca"), ("other-ca", "unrelated-ca")):
        openssl("req", "-x509", *ec, "-keyout", f"{name}.key", "-out", f"{name}.crt",
                "-days", "2", "-subj", f"/CN={cn}",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    leaves = (("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
              ("client", "/O=system:masters/CN=test-admin", "extendedKeyUsage=clientAuth\n"))
    for i, (name, subj, ext) in enumerate(leaves):
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(ext)
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subj, cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-set_serial", str(1000 + i), "-days", "2", "-extfile", f"{name}.ext",
                "-out", f"{name}.crt", cwd=d)


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is visible

    def setup(self):
        global connections
        # Headers and body go out in separate writes; without NODELAY each
        # response waits ~40 ms for the client's delayed ACK.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Handshake here, in the connection's thread, not in the accept loop.
        self.request.do_handshake()
        with connections_lock:
            connections += 1
        super().setup()

    def log_message(self, fmt, *args):
        pass

    def send_json(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_chunked(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def route(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        path = self.path.split("?", 1)[0]
        if path == "/echo":
            self.send_json(200, {
                "method": self.command, "path": self.path,
                "content_type": self.headers.get("Content-Type"),
                "authorization": self.headers.get("Authorization"),
                "user_agent": self.headers.get("User-Agent"),
                "accept": self.headers.get("Accept"),
                "body": body.decode(errors="replace")})
        elif path == "/stats":
            with connections_lock:
                self.send_json(200, {"connections": connections})
        elif path == "/api/v1/namespaces/default/pods/ok":
            self.send_json(200, {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "ok"}})
        elif path == "/api/v1/namespaces/default/pods/nope":
            self.send_json(404, status(404, "NotFound", 'pods "nope" not found'))
        elif path == "/api/v1/namespaces/default/pods" and self.command == "POST":
            self.send_json(409, status(409, "AlreadyExists", 'pods "ok" already exists'))
        elif path == "/gone":
            self.send_json(410, status(410, "Expired", "too old resource version: 1 (42)"))
        elif path == "/forbidden":
            self.send_json(403, status(403, "Forbidden", 'pods is forbidden: User "x" cannot watch'))
        elif path == "/boom":
            data = b"internal kaboom\n"
            self.send_response(500)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif path == "/stream":
            self.start_chunked()
            for i in range(3):
                self.chunk(b'{"type":"ADDED","object":{"n":%d}}\n' % i)
                time.sleep(0.15)
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/stall":
            self.start_chunked()
            self.chunk(b'{"type":"ADDED","object":{"n":0}}\n')
            time.sleep(5)
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/slow":
            time.sleep(2)
            self.send_json(200, {"slow": True})
        else:
            self.send_json(404, status(404, "NotFound", f"no route {path}"))

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, ssl.SSLError, socket.timeout):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = route


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # Rejected handshakes (no or wrong client certificate) are expected.
        pass


def main():
    d = sys.argv[1]
    make_certs(d)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, "server.crt"), os.path.join(d, "server.key"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(os.path.join(d, "ca.crt"))
    srv = Server(("127.0.0.1", 0), Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    print(f"READY {srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
