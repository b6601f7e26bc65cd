#!/usr/bin/env python3
"""Bootstrap Chairside on a machine that has nothing but Python 3.11+.

    python3 dev.py demo [--host 127.0.0.1] [--port 5000]   load the demo clinic and serve it
    python3 dev.py test [pytest args...]                    ruff + the whole test suite

Both commands first make sure `.venv` exists and holds the project with its `[test]` extras; the
install re-runs only when pyproject.toml changes (its sha256 is kept in `.venv/.chairside-stamp`).

`test` also prepares what the suite needs. Chromium (/usr/bin/chromium) for the browser tests is
installed with apt when we are root; PostgreSQL is looked for at $CLINIC_TEST_POSTGRES_URL (started
with pg_ctlcluster if it is installed but down). Outside CI a missing piece only skips its tests
(CLINIC_SKIP_BROWSER=1, CLINIC_TEST_POSTGRES=skip); with CI=true it fails the run instead, so CI can
never go green without having run them. Standard library only: this runs before any venv exists.
"""

from __future__ import annotations  # keeps this file importable by an older python3, to say so

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".chairside-stamp"
CHROMIUM = Path("/usr/bin/chromium")
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEMO_SMTP_PORT = 8025
LINT_PATHS = ("clinic", "tests", "benchmarks", "dev.py")


def log(message: str) -> None:
    print(f"[dev] {message}", flush=True)


def die(message: str) -> NoReturn:
    print(f"[dev] error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def run(cmd: list[str], env: dict[str, str] | None = None) -> int:
    """Run a command from the repository root and return its exit code."""
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


def ensure_venv() -> None:
    """Create .venv if missing; (re)install the project when pyproject.toml has changed."""
    if not (BIN / "python").exists():
        if sys.version_info < (3, 11):  # noqa: UP036 - this runs before any venv, on whatever python3 is
            die(f"Python >= 3.11 is needed, this is {sys.version.split()[0]}; run dev.py with python3.11")
        log(f"creating .venv with {sys.executable}")
        if run([sys.executable, "-m", "venv", str(VENV)]) != 0:
            shutil.rmtree(VENV, ignore_errors=True)  # a venv without pip would look ready next time
            die("could not create .venv (on Debian/Ubuntu: apt-get install python3-venv)")
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == digest:
        return
    log('installing the project into .venv (pip install -e ".[test]")')
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if run([*pip, "-e", ".[test]"]) != 0:
        die("pip install failed; see the output above")
    STAMP.write_text(digest + "\n")


def ensure_chromium(env: dict[str, str]) -> None:
    """Install Chromium for the browser tests if we can; otherwise skip them (or fail in CI)."""
    if not CHROMIUM.exists() and os.geteuid() == 0 and shutil.which("apt-get"):
        log("installing chromium with apt-get (this takes a while)")
        apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]  # wait for another apt rather than fail
        apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if run([*apt, "update", "-q"], env=apt_env) == 0:
            run([*apt, "install", "-y", "-q", "chromium", "chromium-driver"], env=apt_env)
    if CHROMIUM.exists():
        return
    if in_ci():
        die(f"{CHROMIUM} is missing and could not be installed; CI must run the browser tests")
    log(f"warning: {CHROMIUM} not found; browser tests will be skipped (apt-get install chromium)")
    env["CLINIC_SKIP_BROWSER"] = "1"


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def start_local_postgres() -> None:
    """Start the newest local cluster named `main`, as Debian's postgresql-common lays it out."""
    versions = Path("/etc/postgresql")
    if not shutil.which("pg_ctlcluster") or not versions.is_dir():
        return
    found = sorted((d.name for d in versions.iterdir() if d.name.isdigit()), key=int)
    if found:
        log(f"starting PostgreSQL {found[-1]}/main with pg_ctlcluster")
        run(["pg_ctlcluster", "--skip-systemctl-redirect", found[-1], "main", "start"])


def ensure_postgres(env: dict[str, str]) -> None:
    """Point the tests at a reachable PostgreSQL, or skip those tests (fail in CI)."""
    if env.get("CLINIC_TEST_POSTGRES") == "skip" and not in_ci():
        log("CLINIC_TEST_POSTGRES=skip: PostgreSQL tests will be skipped")
        return
    url = env.get("CLINIC_TEST_POSTGRES_URL") or DEFAULT_PG_URL
    parts = urlsplit(url)
    host, port = parts.hostname or "localhost", parts.port or 5432
    if not reachable(host, port):
        start_local_postgres()
        deadline = time.monotonic() + 10
        while not reachable(host, port) and time.monotonic() < deadline:
            time.sleep(0.5)
    if reachable(host, port):
        env["CLINIC_TEST_POSTGRES_URL"] = url
        env.pop("CLINIC_TEST_POSTGRES", None)
        log(f"PostgreSQL tests use {host}:{port}")
        return
    if in_ci():
        die(f"PostgreSQL unreachable at {host}:{port}; CI must run the PostgreSQL tests")
    log(f"warning: PostgreSQL unreachable at {host}:{port}; PostgreSQL tests will be skipped")
    env["CLINIC_TEST_POSTGRES"] = "skip"


def cmd_test(pytest_args: list[str]) -> int:
    ensure_venv()
    env = dict(os.environ)
    ensure_chromium(env)
    ensure_postgres(env)
    paths = [p for p in LINT_PATHS if (ROOT / p).exists()]
    log(f"ruff check {' '.join(paths)}")
    if run([str(BIN / "ruff"), "check", *paths], env=env) != 0:
        die("ruff found problems (try: .venv/bin/ruff check --fix)")
    log(f"pytest {' '.join(pytest_args)}".rstrip())
    code = run([str(BIN / "python"), "-m", "pytest", *pytest_args], env=env)
    if code == 5:
        print("[dev] error: pytest collected no tests; that counts as a failure", file=sys.stderr)
    return code


def cmd_demo(host: str, port: int) -> NoReturn:
    ensure_venv()
    os.environ.setdefault("CLINIC_ENV", "development")
    clinic = str(BIN / "clinic")
    log("loading the demo clinic (clinic demo --reset)")
    if run([clinic, "demo", "--reset"]) != 0:
        die("clinic demo --reset failed")
    if "CLINIC_SMTP_HOST" not in os.environ:
        # The demo's reminders go to a local mail sink that writes them to a file, never to the world.
        mail_log = ROOT / "instance" / "demo-mail.log"
        mail_log.parent.mkdir(exist_ok=True)
        subprocess.Popen([str(BIN / "python"), "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{DEMO_SMTP_PORT}"],
                         stdout=mail_log.open("a"), stderr=subprocess.STDOUT)
        os.environ.update(CLINIC_SMTP_HOST="127.0.0.1", CLINIC_SMTP_PORT=str(DEMO_SMTP_PORT))
        log(f"demo reminder e-mails are written to {mail_log.relative_to(ROOT)}")
    log(f"serving at http://{host}:{port} (Ctrl-C to stop)")
    os.chdir(ROOT)
    os.execv(clinic, [clinic, "run", "--host", host, "--port", str(port)])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dev.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    demo = commands.add_parser("demo", help="load the demo clinic and serve it (default :5000)")
    demo.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=5000, help="port to serve on (default 5000)")
    commands.add_parser(
        "test", help="ruff + pytest; other arguments go to pytest", usage="dev.py test [pytest args...]"
    )
    args, extra = parser.parse_known_args(argv)
    try:
        if args.command == "test":
            return cmd_test(extra)
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        cmd_demo(args.host, args.port)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
