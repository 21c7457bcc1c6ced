"""Listeners an attacker would run (issue 13): plain sockets on 127.0.0.1 that record every byte they receive and
answer just enough of PostgreSQL, LDAP or HTTPS for a client to hand over its password. Test-only: nothing from
`portal` is imported, so they judge the portal from outside.

- FakePostgres answers the startup message with AuthenticationCleartextPassword ('R', code 3), so libpq sends the
  password in a 'p' message, then refuses it.
- FakeLdap reads one LDAP message (the BindRequest, which carries a simple bind's password in clear) and hangs up.
- FakeHttps terminates TLS with a certificate the portal trusts, records the decrypted request (and the decoded
  `Authorization: Basic` credentials) and answers 401.
"""
from __future__ import annotations

import abc
import base64
import socket
import ssl
import struct
import tempfile
import threading
from pathlib import Path

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
AUTH_CLEARTEXT = 3


class Recorder(abc.ABC):
    """Accepts connections on 127.0.0.1 in a thread; `serve` handles one; every byte read lands in `received`."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.connections = 0
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def saw(self, secret: str) -> bool:
        """Whether the secret reached this listener, in any form it records."""
        with self._lock:
            return secret.encode() in bytes(self.received)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            self.serve(conn)
        except (OSError, ConnectionError, ssl.SSLError, EOFError):
            pass
        finally:
            conn.close()

    def read(self, conn: socket.socket, n: int) -> bytes:
        """Exactly n bytes (recorded), or EOFError when the client hangs up first."""
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
            with self._lock:
                self.received.extend(chunk)
        return data

    @abc.abstractmethod
    def serve(self, conn: socket.socket) -> None:
        """Speak just enough of the protocol to make a client send its secret."""


class FakePostgres(Recorder):
    """Speaks the start of the PostgreSQL protocol (v3) until the client has sent its password."""

    def serve(self, conn: socket.socket) -> None:
        while True:
            length, code = struct.unpack("!ii", self.read(conn, 8))
            if length == 8 and code in (SSL_REQUEST, GSSENC_REQUEST):
                conn.sendall(b"N")  # no TLS, no GSS: carry on in clear
                continue
            self.read(conn, length - 8)  # the startup parameters (user, database, ...)
            break
        conn.sendall(b"R" + struct.pack("!ii", 8, AUTH_CLEARTEXT))
        kind = self.read(conn, 1)
        (length,) = struct.unpack("!i", self.read(conn, 4))
        self.read(conn, length - 4)  # 'p': the password, NUL-terminated
        if kind == b"p":
            fields = b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed\0\0"
            conn.sendall(b"E" + struct.pack("!i", len(fields) + 4) + fields)


class FakeLdap(Recorder):
    """Reads one BER-encoded LDAP message (a simple BindRequest holds the password in clear), then hangs up."""

    def serve(self, conn: socket.socket) -> None:
        tag, first = self.read(conn, 2)
        if first & 0x80:
            size = int.from_bytes(self.read(conn, first & 0x7F), "big")
        else:
            size = first
        self.read(conn, size)


class FakeHttps(Recorder):
    """An HTTPS server with a certificate the portal trusts: records each request and answers 401."""

    def __init__(self, cert_pem: str, key_pem: str) -> None:
        super().__init__()
        self.credentials: list[str] = []  # decoded "user:password" of every Basic Authorization header
        self.paths: list[str] = []
        self._dir = tempfile.TemporaryDirectory()
        cert, key = Path(self._dir.name, "cert.pem"), Path(self._dir.name, "key.pem")
        cert.write_text(cert_pem)
        key.write_text(key_pem)
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self._dir.cleanup()

    def saw(self, secret: str) -> bool:
        return super().saw(secret) or any(secret in text for text in self.credentials)

    def serve(self, conn: socket.socket) -> None:
        tls = self._context.wrap_socket(conn, server_side=True)
        try:
            self._exchange(tls)
        finally:
            tls.close()

    def _exchange(self, tls: ssl.SSLSocket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.read(tls, 1)
        lines = head.decode("latin-1").split("\r\n")
        self.paths.append(lines[0])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
            elif name.strip().lower() == "authorization" and value.strip().lower().startswith("basic "):
                try:
                    self.credentials.append(base64.b64decode(value.strip()[6:]).decode("utf-8", "replace"))
                except ValueError:
                    self.credentials.append(value.strip())
        if length:
            self.read(tls, length)
        body = b'{"code":"401","message":"Unauthorized"}'
        tls.sendall(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\n"
                    b"Content-Type: application/json\r\nConnection: close\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
