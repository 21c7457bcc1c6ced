"""HTTPS plumbing shared by the WSO2 simulators: a threading server whose handler threads do the TLS handshake (a
client that stalls cannot block accept()), that tracks open connections so stopping closes keep-alive ones too,
and the test controls every simulator offers in the same style: injected faults (an HTTP status or a connection
reset, optionally after a delay, used once), latency added to every answer, downtime (the port refuses connections
until the simulator comes back on the same port) and a request log. All state sits behind one lock.
"""
from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

HANDSHAKE_TIMEOUT = 5.0
IDLE_TIMEOUT = 30.0
MAX_BODY = 1024 * 1024


@dataclass
class Fault:
    """An injected failure, used once: the first request whose method (None: any), path prefix and, when given,
    `match` (a predicate over the logged request, e.g. a SOAP operation) agree gets `action`: an HTTP status (with
    `body`, or the simulator's generic error body) or "reset" (the TCP connection is reset)."""

    method: str | None
    path_prefix: str
    action: int | str
    delay: float = 0.0
    body: Any = None
    match: Callable[[Any], bool] | None = None
    headers: dict[str, str] | None = None  # extra answer headers, e.g. Retry-After


def check_fault_action(action: int | str) -> None:
    if action != "reset" and not (isinstance(action, int) and 100 <= action <= 599):
        raise ValueError("action is an HTTP status or 'reset'")


class BaseState:
    """The lock, the fault queue, the latency and the request log every simulator has."""

    def __init__(self, *, latency: float = 0.0) -> None:
        self.lock = threading.RLock()
        self.latency = latency
        self.faults: deque[Fault] = deque()
        self.log: list[Any] = []

    def take_fault(self, method: str, path: str, entry: Any = None) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if (fault.method is None or fault.method == method) and path.startswith(fault.path_prefix) and \
                        (fault.match is None or fault.match(entry)):
                    self.faults.remove(fault)
                    return fault
        return None


class Sink:
    """Stands in for wfile after a reset so http.server's flush in finish() has nowhere to write."""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return False


class HandshakeFailed(Exception):
    pass


def drain_and_close(tls: ssl.SSLSocket) -> None:
    """After a refused handshake, read what the client still sends before closing: closing with unread data makes
    the kernel send a RST, which can overtake the TLS alert, and the client would see "connection reset" instead
    of "unknown ca"."""
    try:
        raw = socket.socket(fileno=os.dup(tls.fileno()))
    except OSError:
        tls.close()
        return
    try:
        raw.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            raw.settimeout(max(0.01, deadline - time.monotonic()))
            if not raw.recv(65536):
                break
    except OSError:
        pass
    finally:
        raw.close()
        tls.close()


def server_context(cert_pem: str, key_pem: str, client_ca_pem: str | None = None,
                   require: bool = False) -> ssl.SSLContext:
    """A TLS 1.2+ server context; with `client_ca_pem` it asks for client certificates (required or optional)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, cert_pem, key_pem)
    if client_ca_pem:
        context.load_verify_locations(cadata=client_ca_pem)
        context.verify_mode = ssl.CERT_REQUIRED if require else ssl.CERT_OPTIONAL
    return context


def client_context(ca_pem: str | None = None, cert_pem: str | None = None,
                   key_pem: str | None = None) -> ssl.SSLContext:
    """A TLS client context for a simulator's own outbound calls: trusting `ca_pem` (None: the system CAs) and,
    when both are given, presenting `cert_pem` / `key_pem` as its client certificate (mutual TLS)."""
    context = ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
    if cert_pem and key_pem:
        _load_chain(context, cert_pem, key_pem)
    return context


def _load_chain(context: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
    """ssl loads certificates only from files: write both to a private temporary folder (0600), load, remove."""
    directory = tempfile.mkdtemp(prefix="wso2-sim-")
    try:
        cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
        for path, text in ((cert_path, cert_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
        context.load_cert_chain(cert_path, key_path)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run_until_interrupted(simulator: HttpsSimulator) -> int:
    """The command lines' main loop: serve until Ctrl-C, then stop the simulator."""
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
    return 0


class TlsServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], tls: ssl.SSLContext, sim: HttpsSimulator,
                 handler: type[TlsHandler]) -> None:
        self.tls = tls
        self.sim = sim
        self._open: set[ssl.SSLSocket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def track(self, connection: ssl.SSLSocket, *, add: bool) -> None:
        with self._open_lock:
            (self._open.add if add else self._open.discard)(connection)

    def close_connections(self) -> None:
        with self._open_lock:
            connections, self._open = list(self._open), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: object, client_address: object) -> None:
        # Refused handshakes, clients hanging up, injected resets: all expected here. Real bugs surface in tests
        # as wrong answers; print them only when asked.
        if self.sim.verbose:
            super().handle_error(request, client_address)


class TlsHandler(http.server.BaseHTTPRequestHandler):
    """TLS in the request thread, a size-capped body reader, and a reset that aborts the TCP connection."""

    protocol_version = "HTTP/1.1"
    server: TlsServer
    server_version = "WSO2 Carbon Server"
    log_prefix = "wso2-sim"

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        # Answer at once: without it each reply with a body waits ~40 ms for the client's delayed ACK, which would
        # dwarf the latency the tests inject.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request.settimeout(HANDSHAKE_TIMEOUT)
        tls = self.server.tls.wrap_socket(self.request, server_side=True, do_handshake_on_connect=False)
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError):
            drain_and_close(tls)
            raise HandshakeFailed from None
        tls.settimeout(IDLE_TIMEOUT)
        self.request = self.connection = tls
        self.server.track(tls, add=True)
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.track(self.request, add=False)
            self.request.close()

    def log_message(self, format: str, *args: object) -> None:
        if self.server.sim.verbose:
            sys.stderr.write(f"{self.log_prefix} {self.address_string()} {format % args}\n")

    def read_body(self) -> bytes | None:
        """The request body, or None after answering 411/413 (no chunked bodies, at most MAX_BODY bytes)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.plain(411)
            return None
        length = self.headers.get("Content-Length") or "0"
        if not length.isdigit() or int(length) > MAX_BODY:
            self.plain(413)
            return None
        return self.rfile.read(int(length)) if int(length) else b""

    def plain(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def admit(self, state: BaseState, entry: Any, path: str) -> Fault | None | bool:
        """Log the request, wait the simulator's latency, then take any fault injected for it (after its delay).
        Returns the fault to answer with, None to go on, or False when a reset fault already cut the connection."""
        with state.lock:
            state.log.append(entry)
            latency = state.latency
        if latency:
            time.sleep(latency)
        fault = state.take_fault(self.command, path, entry)
        if fault is None:
            return None
        if fault.delay:
            time.sleep(fault.delay)
        if fault.action == "reset":
            entry.status = "reset"
            self.reset()
            return False
        return fault

    def reset(self) -> None:
        """Abort the TCP connection (RST), as a crashing server or a middlebox would."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.wfile = Sink()
        self.connection.close()

    def write_answer(self, status: int, body: bytes = b"", content_type: str | None = None,
                     headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if content_type and body:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        body = b"" if self.command == "HEAD" else body
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)


class HttpsSimulator:
    """Lifecycle shared by the simulators: https://<hostname>:<port>, start()/stop() or a context manager, and
    downtime on the same port. Subclasses set `state` (a BaseState) before calling __init__ here."""

    state: BaseState
    thread_name = "wso2-simulator"

    def __init__(self, *, context: ssl.SSLContext, handler: type[TlsHandler], host: str, port: int,
                 hostname: str | None, verbose: bool) -> None:
        self.hostname = hostname or host
        self.verbose = verbose
        self._context = context
        self._handler = handler
        self._host = host
        self._server: TlsServer | None = TlsServer((host, port), context, self, handler)
        self._port = self._server.server_address[1]
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()
        self._timers: list[threading.Timer] = []

    # --- lifecycle ---

    def start(self) -> Self:
        with self._lifecycle:
            if self._server is None:
                self._server = TlsServer((self._host, self._port), self._context, self, self._handler)
            # poll_interval is how long stop() waits for the loop to notice: short, as tests start and stop many
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                            name=self.thread_name, daemon=True)
            self._thread.start()
        return self

    def _halt(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        if self._thread is not None:  # shutdown() waits for serve_forever, so only when it runs
            server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        with self._lifecycle:
            self._halt()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- downtime ---

    @property
    def is_down(self) -> bool:
        return self._server is None

    def go_down(self) -> None:
        """Stop listening (connections are refused) and drop open connections; `come_up` listens again on the same
        port."""
        with self._lifecycle:
            self._halt()

    def come_up(self) -> None:
        if self.is_down:
            self.start()

    def down_for(self, seconds: float) -> None:
        """Go down now and come back up after `seconds` (on a timer thread)."""
        self.go_down()
        timer = threading.Timer(seconds, self.come_up)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"https://{self.hostname}:{self.port}"

    # --- test controls (thread-safe) ---

    def push_fault(self, method: str | None, path_prefix: str, action: int | str, *, delay: float = 0.0,
                   body: Any = None, match: Callable[[Any], bool] | None = None,
                   headers: dict[str, str] | None = None) -> None:
        check_fault_action(action)
        with self.state.lock:
            self.state.faults.append(Fault(method, path_prefix, action, delay, body, match, headers))

    def clear_faults(self) -> None:
        with self.state.lock:
            self.state.faults.clear()

    def set_latency(self, seconds: float) -> None:
        with self.state.lock:
            self.state.latency = seconds

    @property
    def requests(self) -> list[Any]:
        with self.state.lock:
            return list(self.state.log)

    def clear_log(self) -> None:
        with self.state.lock:
            self.state.log.clear()
