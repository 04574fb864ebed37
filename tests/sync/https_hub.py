#!/usr/bin/env python3
"""tests/sync/https_hub.py — a git smart-HTTP server over TLS for
tests/sync/https.sh: serves the bare repositories under ROOT at
https://127.0.0.1:PORT/<name>, running `git upload-pack` / `git
receive-pack --stateless-rpc` for each request, behind HTTP Basic
authentication (USER:PASSWORD). Prints the port once it listens.

    https_hub.py ROOT CERT KEY USER:PASSWORD
"""
import base64
import http.server
import os
import socketserver
import ssl
import subprocess
import sys

ROOT, CERT, KEY, CRED = sys.argv[1:5]
SERVICES = ("git-upload-pack", "git-receive-pack")


def pkt(line):
    return b"%04x" % (len(line) + 4) + line


class Hub(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, ctype, body, extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def authorized(self):
        want = "Basic " + base64.b64encode(CRED.encode()).decode()
        if self.headers.get("Authorization") == want:
            return True
        self.reply(401, "text/plain", b"who are you?\n", [("WWW-Authenticate", 'Basic realm="hub"')])
        return False

    def repo(self, path):
        name = path.strip("/").split("/")[0]
        full = os.path.realpath(os.path.join(ROOT, name))
        if os.path.dirname(full) != os.path.realpath(ROOT) or not os.path.isdir(full):
            self.reply(404, "text/plain", b"no such repository\n")
            return None
        return full

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def do_GET(self):
        path, _, query = self.path.partition("?")
        service = query.partition("service=")[2]
        if not path.endswith("/info/refs") or service not in SERVICES:
            return self.reply(404, "text/plain", b"dumb http is not served\n")
        if not self.authorized():
            return
        repo = self.repo(path)
        if repo:
            refs = subprocess.run(["git", service[4:], "--stateless-rpc", "--advertise-refs", repo],
                                  capture_output=True, check=True).stdout
            body = pkt(b"# service=%s\n" % service.encode()) + b"0000" + refs
            self.reply(200, "application/x-%s-advertisement" % service, body)

    def do_POST(self):
        service = self.path.rsplit("/", 1)[-1]
        if service not in SERVICES:
            return self.reply(404, "text/plain", b"no such service\n")
        data = self.body()
        if not self.authorized():
            return
        repo = self.repo(self.path)
        if repo:
            out = subprocess.run(["git", service[4:], "--stateless-rpc", repo], input=data,
                                 capture_output=True, check=True).stdout
            self.reply(200, "application/x-%s-result" % service, out)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


srv = Server(("127.0.0.1", 0), Hub)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(CERT, KEY)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
