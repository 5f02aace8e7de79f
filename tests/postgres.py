"""A throw-away PostgreSQL 15 server for end-to-end tests.

`PostgresServer.start()` runs `initdb` and `pg_ctl` from /usr/lib/postgresql/15/bin (or
POSTGRES_BIN_DIR) into a temporary directory, listening on a free 127.0.0.1 port only (no Unix
socket in a shared place), with a password login over TCP as target-postgres makes it. PostgreSQL
refuses to run as root, so when the tests run as root the server runs as the `postgres` OS user.
`stop()` shuts it down and removes the directory. `postgres_server` is the session fixture.

Durability is switched off (fsync, synchronous_commit): the data lives for one test session.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql

if TYPE_CHECKING:
    from collections.abc import Iterator

BIN_DIR = Path(os.environ.get("POSTGRES_BIN_DIR", "/usr/lib/postgresql/15/bin"))
SERVICE_USER = "postgres"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """One running server: where it listens and how to log in."""

    directory: Path
    port: int
    host: str = "127.0.0.1"
    user: str = "meltano"
    password: str = "pg-test-password"
    database: str = "warehouse"
    _run_as: str | None = field(default=None, repr=False)

    @classmethod
    def start(cls, *, timeout: float = 60) -> PostgresServer:
        """initdb + pg_ctl start on a free loopback port; raises with the server log on failure."""
        initdb = BIN_DIR / "initdb"
        if not initdb.exists():
            msg = (
                f"{initdb} not found: install PostgreSQL 15 (apt-get install postgresql-15) "
                "or point POSTGRES_BIN_DIR at its bin directory"
            )
            raise RuntimeError(msg)
        run_as = SERVICE_USER if os.geteuid() == 0 else None
        directory = Path(tempfile.mkdtemp(prefix="tap-m365-pg-"))
        server = cls(directory=directory, port=free_port(), _run_as=run_as)
        if run_as:
            account = pwd.getpwnam(run_as)
            os.chown(directory, account.pw_uid, account.pw_gid)
        try:
            server._initdb()
            server._pg_ctl_start(timeout)
            server._create_database()
        except BaseException:
            server.stop()
            raise
        return server

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.directory / "data"

    @property
    def log_file(self) -> Path:
        """The server log (printed when the server does not come up)."""
        return self.directory / "server.log"

    def _run(self, *argv: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(arg) for arg in argv],
            capture_output=True,
            text=True,
            check=True,
            timeout=timeout,
            user=self._run_as,
            cwd=self.directory,
            env={**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"},
        )

    def _initdb(self) -> None:
        password_file = self.directory / "pwfile"
        password_file.write_text(self.password + "\n")
        if self._run_as:
            account = pwd.getpwnam(self._run_as)
            os.chown(password_file, account.pw_uid, account.pw_gid)
        self._run(
            BIN_DIR / "initdb",
            "--pgdata",
            self.data_dir,
            "--username",
            self.user,
            "--pwfile",
            password_file,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",
        )
        password_file.unlink()

    def _pg_ctl_start(self, timeout: float) -> None:
        options = " ".join(
            [
                f"-p {self.port}",
                f"-c listen_addresses={self.host}",
                f"-k {self.directory}",  # Unix socket in our own directory
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
            ]
        )
        try:
            self._run(
                BIN_DIR / "pg_ctl",
                "start",
                "--pgdata",
                self.data_dir,
                "--log",
                self.log_file,
                "--wait",
                f"--timeout={int(timeout)}",
                "-o",
                options,
                timeout=timeout + 10,
            )
        except subprocess.CalledProcessError as exc:
            log = self.log_file.read_text() if self.log_file.exists() else "(no log)"
            msg = f"PostgreSQL did not start: {exc.stderr.strip()}\n{log}"
            raise RuntimeError(msg) from None
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.connect(dbname="postgres"):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _create_database(self) -> None:
        with self.connect(dbname="postgres", autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))

    def connect(self, *, dbname: str | None = None, autocommit: bool = False) -> psycopg.Connection:
        """A psycopg connection over TCP with the password, as target-postgres connects."""
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname or self.database,
            autocommit=autocommit,
            connect_timeout=10,
        )

    def query(self, statement: str | sql.Composable, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of one query (compose identifiers with `psycopg.sql`)."""
        with self.connect() as connection:
            return connection.execute(statement, params or None).fetchall()  # type: ignore[arg-type]

    def target_env(self) -> dict[str, str]:
        """target-postgres settings as the environment variables Meltano reads."""
        return {
            "TARGET_POSTGRES_HOST": self.host,
            "TARGET_POSTGRES_PORT": str(self.port),
            "TARGET_POSTGRES_USER": self.user,
            "TARGET_POSTGRES_PASSWORD": self.password,
            "TARGET_POSTGRES_DATABASE": self.database,
        }

    def dbt_env(self, source_schema: str, schema: str) -> dict[str, str]:
        """dbt-postgres settings (meltano.yml) as the environment variables Meltano reads."""
        return {
            "DBT_POSTGRES_HOST": self.host,
            "DBT_POSTGRES_PORT": str(self.port),
            "DBT_POSTGRES_USER": self.user,
            "DBT_POSTGRES_PASSWORD": self.password,
            "DBT_POSTGRES_DBNAME": self.database,
            "DBT_POSTGRES_SOURCE_SCHEMA": source_schema,
            "DBT_POSTGRES_SCHEMA": schema,
        }

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory."""
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                self._run(
                    BIN_DIR / "pg_ctl",
                    "stop",
                    "--pgdata",
                    self.data_dir,
                    "--mode=fast",
                    "--wait",
                    timeout=60,
                )
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL 15 server for the whole test session, stopped at its end."""
    server = PostgresServer.start()
    try:
        yield server
    finally:
        server.stop()
