"""Local stand-ins for the Google endpoints keyless URL signing touches, for wire tests.

- `MetadataServer`: the Compute/Cloud Run metadata server (what a Cloud Function's default
  credentials use): service-account email, access token, project id. The google-auth library is
  pointed at it with GCE_METADATA_HOST / GCE_METADATA_IP, which it honours.
- `IamCredentialsProxy`: an HTTPS proxy (HTTPS_PROXY) that accepts CONNECT only for
  iamcredentials.googleapis.com:443, terminates TLS itself with a certificate of a throwaway CA
  (REQUESTS_CA_BUNDLE), and answers `POST /v1/projects/-/serviceAccounts/EMAIL:signBlob` by
  signing the payload with a local RSA key (RSASSA-PKCS1-v1_5 with SHA-256, as IAM does). Any other
  host gets 403: nothing leaves the machine. The library under test is not patched: it sends the
  very request it would send to Google.
"""
from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import socket
import socketserver
import ssl
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

IAM_HOST = "iamcredentials.googleapis.com"


class _Threaded(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _serve(handler_cls) -> tuple[_Threaded, threading.Thread]:
    server = _Threaded(("127.0.0.1", 0), handler_cls)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    return server, t


class MetadataServer:
    def __init__(self, email: str, project: str, token: str = "ya29.wire-token") -> None:
        self.email, self.project, self.token = email, project, token
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                outer.requests.append(self.path)
                if self.headers.get("Metadata-Flavor") != "Google":
                    return self._send(403, "text/plain", b"Missing Metadata-Flavor:Google header.")
                path = self.path.split("?")[0].rstrip("/")
                base = "/computeMetadata/v1"
                sa = f"{base}/instance/service-accounts/default"
                # the account is also served under its email, as the metadata server does (google-auth
                # asks there once a refresh has told it the email)
                path = path.replace(f"{base}/instance/service-accounts/{outer.email}", sa)
                if path in ("", base):
                    return self._send(200, "application/text", b"")
                if path == sa:
                    return self._send(200, "application/json", json.dumps(
                        {"aliases": ["default"], "email": outer.email,
                         "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}).encode())
                if path == f"{sa}/email":
                    return self._send(200, "application/text", outer.email.encode())
                if path == f"{sa}/token":
                    return self._send(200, "application/json", json.dumps(
                        {"access_token": outer.token, "expires_in": 3599, "token_type": "Bearer"}).encode())
                if path == f"{base}/project/project-id":
                    return self._send(200, "application/text", outer.project.encode())
                return self._send(404, "text/plain", b"not found")

            def _send(self, code, ctype, body):
                self.send_response(code)
                self.send_header("Metadata-Flavor", "Google")
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server, self._thread = _serve(Handler)
        self.host = f"127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _ca_and_leaf(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA (ca.pem) and a leaf certificate for IAM_HOST signed by it (leaf.pem, leaf.key)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sceneflow wire-test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(hours=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, IAM_HOST)]))
            .issuer_name(ca_name).public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(hours=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(IAM_HOST)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "leaf.pem", folder / "leaf.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    return paths


class IamCredentialsProxy:
    def __init__(self, folder: Path, token: str) -> None:
        self.token = token
        self.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = "wire-key-1"
        self.sign_requests: list[dict] = []  # {"path", "authorization", "payload": bytes}
        self.refused: list[str] = []
        self.delay_s = 0.0  # each signBlob answer waits this long (an IAM round trip)
        self.max_in_flight = 0  # the most signBlob calls answered at the same time
        self._in_flight = 0
        self._count_lock = threading.Lock()
        self.ca_path, leaf, leaf_key = _ca_and_leaf(folder)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(leaf, leaf_key)
        outer = self

        class Iam(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                prefix, suffix = "/v1/projects/-/serviceAccounts/", ":signBlob"
                if not (path.startswith(prefix) and path.endswith(suffix)):
                    return self._json(404, {"error": {"code": 404, "message": "not found"}})
                if self.headers.get("Authorization") != f"Bearer {outer.token}":
                    return self._json(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
                payload = base64.b64decode(json.loads(body)["payload"])
                outer.sign_requests.append({"path": self.path, "email": path[len(prefix):-len(suffix)],
                                            "authorization": self.headers.get("Authorization"),
                                            "payload": payload})
                with outer._count_lock:
                    outer._in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer._in_flight)
                try:
                    time.sleep(outer.delay_s)
                finally:
                    with outer._count_lock:
                        outer._in_flight -= 1
                sig = outer.signing_key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
                self._json(200, {"keyId": outer.key_id, "signedBlob": base64.b64encode(sig).decode()})

            def _json(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Proxy(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_CONNECT(self):
                if self.path != f"{IAM_HOST}:443":
                    outer.refused.append(self.path)
                    self.send_response(403)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200, "Connection established")
                self.end_headers()
                self.wfile.flush()
                conn = tls.wrap_socket(self.connection, server_side=True)
                try:
                    Iam(conn, self.client_address, self.server)
                except (ssl.SSLError, OSError):
                    pass
                finally:
                    try:
                        conn.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                self.close_connection = True

            def _refuse(self):
                outer.refused.append(self.path)
                self.send_response(403)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = _refuse

        self._server, self._thread = _serve(Proxy)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def public_key(self):
        return self.signing_key.public_key()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
