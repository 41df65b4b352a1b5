"""A throwaway PostgreSQL server for the tests: real, never mocked.

Optuna studies shared by several worker processes live in PostgreSQL, so their tests need a
real server. ``running_postgres`` starts one in a fresh temporary directory, on a free TCP port
of 127.0.0.1 only (and a Unix socket inside that directory, never /var/run/postgresql), with
trust authentication, and removes every trace of it afterwards. PostgreSQL refuses to run as
root, so under root the server runs as the ``postgres`` system user (``nobody`` where there is
none). .ci/run installs Debian's ``postgresql`` package where no ``initdb`` is found.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SUPERUSER = "postgres"  # the database role, whichever OS user runs the server
DBNAME = "sentibench_test"
START_TIMEOUT_S = 30


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries or no Python driver: the fixture skips, or fails under CI."""


def find_bindir() -> Path:
    """The directory with ``initdb`` and ``pg_ctl``: PATH first, then Debian's
    /usr/lib/postgresql/<major>/bin (not on PATH; the newest major wins)."""
    found = shutil.which("initdb")
    candidates = [Path(found).parent] if found else []
    debian = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += [Path(d) for d in sorted(debian, key=lambda d: int(Path(d).parent.name),
                                           reverse=True) if Path(d).parent.name.isdigit()]
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise PostgresUnavailable("PostgreSQL not found: no initdb/pg_ctl on PATH nor in "
                              "/usr/lib/postgresql/*/bin (apt-get install postgresql)")


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_user() -> pwd.struct_passwd | None:
    """The unprivileged OS user to run the server as under root; None when not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresUnavailable("running as root and neither a 'postgres' nor a 'nobody' user")


def _run(command: list[str], user: pwd.struct_passwd | None, cwd: Path, what: str,
         log: Path | None = None) -> None:
    """Run a PostgreSQL tool (as ``user`` when given) and fail with its output on error."""
    drop = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=START_TIMEOUT_S + 30, **drop)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
        raise RuntimeError(f"PostgreSQL {what} failed (exit {proc.returncode}): "
                           f"{' '.join(command)}\n{proc.stdout}{proc.stderr}\n{tail}")


@contextmanager
def running_postgres() -> Iterator[str]:
    """Start a server, create DBNAME, yield its SQLAlchemy URL; stop it and delete it all after.

    ``pg_ctl start -w -t START_TIMEOUT_S`` returns only once the server accepts connections
    (or fails with the server log); teardown runs however the tests ended.
    """
    try:
        import psycopg2
    except ImportError as err:
        raise PostgresUnavailable("psycopg2 missing (pip install 'psycopg2-binary>=2.9')") from err
    bindir, user = find_bindir(), _server_user()
    # tempfile, not pytest's tmp_path: that one is 0700 under root, closed to the server user.
    root = Path(tempfile.mkdtemp(prefix="sentibench-pg-"))
    data, sockdir, log = root / "data", root / "sock", root / "server.log"
    sockdir.mkdir()
    if user:
        for path in (root, sockdir):
            os.chown(path, user.pw_uid, user.pw_gid)
    try:
        _run([str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust",
              "--no-locale", "--encoding=UTF8", "--no-sync"], user, root, "initdb")
        port = free_port()
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} -k {sockdir} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        _run([str(bindir / "pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w",
              "-t", str(START_TIMEOUT_S), "-o", options], user, root, "start", log)
        conn = psycopg2.connect(host="127.0.0.1", port=port, user=SUPERUSER, dbname="postgres",
                                connect_timeout=10)
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {DBNAME}")
        finally:
            conn.close()
        yield f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{port}/{DBNAME}"
    finally:
        try:
            if (data / "postmaster.pid").exists():  # also after a failed or timed-out start
                _run([str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w"],
                     user, root, "stop", log)
        finally:
            shutil.rmtree(root, ignore_errors=True)
