"""A private PostgreSQL server for the tests: Debian's ``initdb`` and ``pg_ctl`` in a
temporary directory on a free loopback port, with no system service.

initdb refuses to run as root, so as root the cluster belongs to the ``postgres`` user
(created by Debian's ``postgresql-common``; made here if it is missing) and every server
command runs through ``runuser``. One server serves one pytest process (each xdist worker
starts its own); each test gets a database of its own, made with CREATE DATABASE.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Sequence

import psycopg
from benchlib.ports import free_port_pair

SUPERUSER = "classbridge"
# The pid of the pytest process a server belongs to, in its directory (reap_orphans).
OWNER_FILE = "owner.pid"
# The server's own crash safety is of no use to a throw-away test cluster.
FAST = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c max_connections=200 -c shared_buffers=32MB -c unix_socket_directories=''"
)


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def bin_dir() -> pathlib.Path:
    """The directory of Debian's newest PostgreSQL server binaries (initdb, pg_ctl), or
    ``CLASSBRIDGE_PG_BIN``."""
    chosen = os.environ.get("CLASSBRIDGE_PG_BIN")
    if chosen:
        if not (pathlib.Path(chosen) / "pg_ctl").is_file():
            raise PostgresMissing(f"CLASSBRIDGE_PG_BIN={chosen} holds no initdb and pg_ctl")
        candidates = [pathlib.Path(chosen)]
    else:
        found = pathlib.Path("/usr/lib/postgresql").glob("*/bin")
        candidates = sorted(found, key=lambda p: int(p.parent.name), reverse=True)
        on_path = shutil.which("pg_ctl")
        if on_path:
            candidates.append(pathlib.Path(on_path).parent)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    raise PostgresMissing(
        "no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin or on "
        "PATH; install Debian's postgresql package (scripts/bootstrap does)"
    )


class PgServer:
    """One PostgreSQL cluster on 127.0.0.1:``port``; ``start()`` then ``stop()``."""

    def __init__(self, binaries: pathlib.Path, root: pathlib.Path | None = None) -> None:
        self.binaries = binaries
        if root is None:
            root = pathlib.Path(tempfile.mkdtemp(prefix="classbridge-pg-"))
            (root / OWNER_FILE).write_text(str(os.getpid()))
        self.root = root
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.password = secrets.token_hex(12)
        self.port = 0
        self._owner = _cluster_owner()
        self._made = 0

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """initdb, then pg_ctl start on a free port (a taken port is tried again)."""
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self._owner is not None:
            os.chown(self.root, self._owner.pw_uid, self._owner.pw_gid)
            os.chown(pwfile, self._owner.pw_uid, self._owner.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        pwfile.unlink()
        for attempt in range(5):
            self.port = free_port_pair()
            try:
                self._run(
                    "pg_ctl",
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-o",
                    f"-p {self.port} -c listen_addresses=127.0.0.1 {FAST}",
                )
                return
            except subprocess.CalledProcessError:
                if attempt == 4 or "already in use" not in self.server_log():
                    raise

    def pause(self) -> None:
        """Stop the server at once (every connection drops), keeping its data."""
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")

    def resume(self) -> None:
        """Start the paused server again on the same port."""
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            f"-p {self.port} -c listen_addresses=127.0.0.1 {FAST}",
        )

    def stop(self) -> None:
        """Stop the server at once and delete its directory."""
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
        shutil.rmtree(self.root, ignore_errors=True)

    def server_log(self) -> str:
        """What the server wrote to its log so far."""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    # -- databases -------------------------------------------------------------------

    def url(self, database: str, *, password: str | None = None) -> str:
        """A SQLAlchemy URL for ``database`` as the superuser (or with another password)."""
        secret = self.password if password is None else password
        return f"postgresql+psycopg://{SUPERUSER}:{secret}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit connection to the ``postgres`` database."""
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=SUPERUSER,
            password=self.password,
            dbname="postgres",
            autocommit=True,
        )

    def create_database(self) -> str:
        """A new, empty database; its name."""
        self._made += 1
        name = f"t{os.getpid()}_{self._made}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending whatever connections a test left open to it."""
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # -- helpers ---------------------------------------------------------------------

    def _run(self, tool: str, *args: str) -> None:
        command: Sequence[str] = [str(self.binaries / tool), *args]
        if self._owner is not None:
            command = ["runuser", "-u", self._owner.pw_name, "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120
        )
        if done.returncode != 0:
            raise subprocess.CalledProcessError(
                done.returncode,
                command,
                done.stdout,
                f"{done.stderr}\n--- server log ---\n{self.server_log()[-3000:]}",
            )


def _cluster_owner() -> pwd.struct_passwd | None:
    """Who owns the cluster: None (this user) unless we are root, whom initdb refuses."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam("postgres")


def start_server() -> PgServer:
    """A running server; raises PostgresMissing when the binaries are absent."""
    server = PgServer(bin_dir())
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


def reap_orphans() -> None:
    """Stop the servers of test runs that were killed before they could stop their own
    (pg_ctl puts the server in a session of its own, out of reach of the run's end)."""
    for root in pathlib.Path(tempfile.gettempdir()).glob("classbridge-pg-*"):
        try:
            owner = int((root / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if _alive(owner):
            continue
        PgServer(bin_dir(), root).stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
