"""Load from wrk (Debian package `wrk`, written in C) and the server's own CPU time per request.

Every gunicorn benchmark measures a target in timed samples: wrk drives the load for a few seconds (a Lua script
sets the method, headers, cookies and bodies), and the CPU time gunicorn's arbiter and workers used meanwhile is
read from their /proc/<pid>/stat counters (utime + stime) before and after. CPU per request = that time ÷ the
requests wrk completed. Ratios of CPU per request (yardstick ÷ target) do not depend on how fast the client is or on
what else runs on the machine: another process taking a core slows both the page and its yardstick in wall time,
but the CPU a request costs the server stays what it is.
"""
from __future__ import annotations

import json
import resource
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from _common import HOST, Stage


@dataclass
class Target:
    """One request the load repeats: method, path, headers and the bodies it cycles through."""
    name: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    bodies: list[str] = field(default_factory=list)


@dataclass
class Sample:
    """One timed load on one target: requests served (2xx), errors, latency, and the CPU the client and the
    server used in it."""
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    p50: float = 0.0
    p99: float = 0.0

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


@dataclass
class Totals:
    """Samples of one target over the rounds; latency percentiles weighted by each round's requests."""
    samples: list[Sample] = field(default_factory=list)

    def total(self, attribute: str) -> float:
        return sum(getattr(s, attribute) for s in self.samples)

    @property
    def rate(self) -> float:
        seconds = self.total("seconds")
        return self.total("ok") / seconds if seconds else 0.0

    @property
    def errors(self) -> int:
        return int(self.total("errors"))

    @property
    def cpu_per_request(self) -> float:
        """Server CPU seconds per request answered (errors included: they cost the server too)."""
        answered = self.total("ok") + self.total("errors")
        return self.total("server_cpu") / answered if answered else 0.0

    def share(self, attribute: str) -> float:
        """A CPU total as a share of wall time, in cores."""
        seconds = self.total("seconds")
        return self.total(attribute) / seconds if seconds else 0.0

    def weighted(self, attribute: str) -> float:
        served = self.total("ok")
        return sum(getattr(s, attribute) * s.ok for s in self.samples) / served if served else 0.0


def cpu_ratio(yardstick: Totals, target: Totals) -> float:
    """Yardstick's CPU per request ÷ the target's: 0.5 means the target costs the server twice the yardstick."""
    return yardstick.cpu_per_request / target.cpu_per_request if target.cpu_per_request else 0.0


def rate_ratio(yardstick: Totals, target: Totals) -> float:
    """The throughput ratio of the earlier rounds (target req/s ÷ yardstick req/s), kept for comparison."""
    return target.rate / yardstick.rate if yardstick.rate else 0.0


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def need_wrk() -> None:
    if not have_wrk():
        raise RuntimeError("wrk is not installed: apt-get install -y wrk (scripts/ensure-system-packages does it)")


def lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string of printable ASCII is a valid Lua string literal


WRK_DONE = """
redirects = 0
local threads = {}
setup = function(thread) table.insert(threads, thread) end
-- a redirect (to /login: a lost session) is an error for every target measured here
response = function(status, headers, body) if status >= 300 and status < 400 then redirects = redirects + 1 end end
done = function(summary, latency, requests)
  local e, moved = summary.errors, 0
  for _, t in ipairs(threads) do moved = moved + t:get("redirects") end
  io.write(string.format('WRK-JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"status": %d, "timeout": %d, "redirects": %d, "p50_us": %d, "p99_us": %d}\\n', summary.requests,
    summary.duration, e.connect, e.read, e.write, e.status, e.timeout, moved, latency:percentile(50),
    latency:percentile(99)))
end
"""


def wrk_script(target: Target) -> str:
    lines = [f"wrk.method = {lua_string(target.method)}"]
    for name, value in target.headers.items():
        lines.append(f"wrk.headers[{lua_string(name)}] = {lua_string(value)}")
    if len(target.bodies) == 1:
        lines.append(f"wrk.body = {lua_string(target.bodies[0])}")
    elif target.bodies:  # one request string per body, made once; request() hands them out in turn
        lines.append("local bodies = {" + ", ".join(lua_string(b) for b in target.bodies) + "}")
        lines.append("local prepared, i = {}, 0")
        lines.append("init = function(args) for n, b in ipairs(bodies) do "
                     f"prepared[n] = wrk.format(nil, {lua_string(target.path)}, nil, b) end end")
        lines.append("request = function() i = i % #prepared + 1; return prepared[i] end")
    return "\n".join(lines) + "\n" + WRK_DONE


def run_wrk(target: Target, port: int, seconds: float, connections: int, folder: Path,
            pin: str | None = None) -> Sample:
    """wrk for `seconds` on one target; `pin` is a CPU list for taskset (the client kept off the server's cores)."""
    script = folder / f"{target.name.replace(' ', '_').replace('/', '_')}.lua"
    script.write_text(wrk_script(target))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script),
               f"http://{HOST}:{port}{target.path}"]
    if pin:
        command = ["taskset", "-c", pin, *command]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK-JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("WRK-JSON "))
    # connection errors are connect/read/write/timeout; status counts answers >= 400, redirects the 3xx
    wrong = data["status"] + data["redirects"]
    errors = data["connect"] + data["read"] + data["write"] + data["timeout"] + wrong
    return Sample(ok=data["requests"] - wrong, errors=errors, seconds=data["duration_us"] / 1e6,
                  client_cpu=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
                  p50=data["p50_us"] / 1e6, p99=data["p99_us"] / 1e6)


def measure(stage: Stage, target: Target, seconds: float, connections: int, pin: str | None = None) -> Sample:
    """One wrk sample with the server's CPU time around it (arbiter and workers, /proc)."""
    before = stage.server_cpu()
    sample = run_wrk(target, stage.port, seconds, connections, stage.folder, pin)
    sample.server_cpu = stage.server_cpu() - before
    return sample


def cookie_header(cookies: dict[str, str]) -> dict[str, str]:
    """The Cookie header of a signed-in Client, for wrk to send on every request."""
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


TABLE_HEADER = (f"{'target':<22} | {'req/s':>8} | {'errors':>6} | {'p50 ms':>7} | {'p99 ms':>7} | "
                f"{'CPU ms/req':>10} | {'server CPU':>10} | {'client CPU':>10}")


def table_row(name: str, t: Totals) -> str:
    return (f"{name:<22} | {t.rate:>8.1f} | {t.errors:>6} | {t.weighted('p50') * 1000:>7.2f} | "
            f"{t.weighted('p99') * 1000:>7.2f} | {t.cpu_per_request * 1000:>10.3f} | {t.share('server_cpu'):>9.0%} | "
            f"{t.share('client_cpu'):>9.0%}")


TABLE_NOTE = ("CPU ms/req: gunicorn's own CPU time (arbiter + workers, /proc utime+stime) per request answered; the "
              "goals are ratios of it. server CPU / client CPU: cores used during the target's rounds (200% = both of "
              "2). The machine is shared with other work: wall-clock rates vary, CPU per request much less.")
