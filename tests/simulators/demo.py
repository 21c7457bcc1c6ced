"""`make demo`: both WSO2 simulators and the portal wired to them, on one machine, for clicking through the flow.

A fresh SQLite database in instance/demo/ (replaced on every start), the first administrator's one-time password
printed, the simulators' CA and the portal's connections stored, sharing off (the portal writes both products),
then the portal on http://127.0.0.1:5000 and a worker, until Ctrl-C stops everything.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5000, help="the portal's port on 127.0.0.1 (default 5000)")
    parser.add_argument("--direction", choices=("off", "is_to_apim", "apim_to_is"), default="off",
                        help="the tenant-sharing direction to start with (default off)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every simulated WSO2 call")
    args = parser.parse_args(argv)

    instance = ROOT / "instance" / "demo"
    shutil.rmtree(instance, ignore_errors=True)
    instance.mkdir(parents=True)
    os.environ["PORTAL_INSTANCE_PATH"] = str(instance)
    os.environ.pop("DATABASE_URL", None)

    import flask_migrate

    from portal import create_app
    from portal.services import admins
    from tests.sync_env import wso2

    app = create_app({"INSTANCE_PATH": str(instance), "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance}/portal.sqlite3",
                      "DEBUG": True, "LOG_LEVEL": "WARNING"})
    with app.app_context():
        flask_migrate.upgrade()
        first = admins.bootstrap_first_admin()
        sign_in = (first.admin.username, first.password) if first is not None else None
    with wso2(latency=args.latency) as products:
        products.connect(app)
        products.share(app, args.direction)
        print("=" * 72)
        print(f"IS 7 simulator:         {products.is7.base_url}")
        print(f"API Manager simulator:  {products.apim.base_url}")
        print(f"Portal:                 http://127.0.0.1:{args.port}  (sharing: {args.direction})")
        if sign_in is not None:
            print(f"Sign in as {sign_in[0]} with the one-time password {sign_in[1]}")
        print("Ctrl-C stops the portal, the worker and both simulators.")
        print("=" * 72, flush=True)
        env = {**os.environ, "FLASK_APP": "portal"}
        flask = [sys.executable, "-m", "flask", "--app", "portal"]
        children = [
            subprocess.Popen([*flask, "worker", "--concurrency", "4"], cwd=ROOT, env=env),
            subprocess.Popen([*flask, "run", "--host", "127.0.0.1", "--port", str(args.port)], cwd=ROOT, env=env),
        ]
        try:
            children[1].wait()
        except KeyboardInterrupt:
            pass
        finally:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in children:
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
