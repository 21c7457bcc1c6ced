"""gunicorn settings for the portal behind the local nginx (deploy/nginx/tenant-portal.conf).

    gunicorn -c deploy/gunicorn.conf.py          # serves wsgi:app on 127.0.0.1:8000

Command-line flags and GUNICORN_CMD_ARGS override anything here (e.g. --bind 127.0.0.1:8001). The portal's own
settings come from PORTAL_* variables and DATABASE_URL (README, "Configuration"), not from this file.
"""
import os
from pathlib import Path

wsgi_app = "wsgi:app"
chdir = str(Path(__file__).resolve().parent.parent)  # the checkout, where wsgi.py lives

# Loopback only: nginx terminates TLS and is the sole client.
bind = ["127.0.0.1:8000"]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may use (cgroups, taskset), not the host's
    except AttributeError:
        return os.cpu_count() or 1


# Threads, not more processes: a request often waits on WSO2, an identity provider or the database, and a thread
# waiting on a socket costs far less memory than a worker. Processes give parallelism for CPU work (argon2id,
# templates). WEB_CONCURRENCY is gunicorn's usual variable for the number of workers.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * _cores())
threads = 4

# gthread workers heartbeat from their main thread, so `timeout` catches a stuck worker, not a slow request;
# outbound calls carry their own timeouts (IDP_CHECK_TIMEOUT, the WSO2 clients), and nginx gives up after 60 s.
timeout = 60
graceful_timeout = 30  # SIGTERM: in-flight requests get this long to finish (systemd waits a little longer)
keepalive = 5  # above nginx's upstream keepalive_timeout (4 s), so nginx never reuses a socket gunicorn just closed

# nginx is the only proxy whose X-Forwarded-Proto counts. The portal's ProxyFix (PORTAL_PROXY_FIX_*) sets the
# scheme, host and client address from the same headers; gunicorn's check keeps wsgi.url_scheme right even where
# ProxyFix is off. One header only: a client-sent X-Forwarded-Ssl that disagreed would make gunicorn refuse it.
forwarded_allow_ips = "127.0.0.1,::1"
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}

# Logs to stdout/stderr for journald. The request id is the X-Request-ID the portal answered with: nginx's id (or
# the client's, when sane) carried through, so one id finds the nginx line, this line and the app's own lines.
# %(h)s is the client's address once ProxyFix has applied X-Forwarded-For.
accesslog = "-"
errorlog = "-"
loglevel = "info"
access_log_format = '%(h)s - %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" rid=%({x-request-id}o)s %(M)sms'

# gunicorn's control socket (gunicornc) only where systemd provides a private runtime directory; elsewhere it would
# default to one shared path in $HOME that every gunicorn of the user fights over.
if os.environ.get("RUNTIME_DIRECTORY"):
    control_socket = os.path.join(os.environ["RUNTIME_DIRECTORY"].split(":")[0], "gunicorn.ctl")
else:
    control_socket_disable = True
