"""Real services for tests: redis-server, worker processes and gunicorn on free ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import redis

from app.devserver import redis_server_binary

ROOT = Path(__file__).resolve().parent.parent

# The test running now when it is not marked slow (conftest sets it): a long-lived process or a
# browser started under it fails the test, so `make test-fast` stays free of them.
fast_test_running: str | None = None


def refuse_in_a_fast_test(what: str) -> None:
    """Fail a test that starts `what` without the `slow` marker saying so."""
    if fast_test_running is not None:
        raise AssertionError(
            f"{fast_test_running} starts {what} but is not marked slow: add @pytest.mark.slow"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float = 30, interval: float = 0.05, message: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


class RedisServer:
    """A redis-server with AOF on, in its own directory, that can be stopped and started again."""

    def __init__(
        self,
        workdir: Path,
        password: str | None = None,
        tls: bool = False,
        extra_args: list[str] | None = None,
        binary: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.binary = binary or redis_server_binary()
        self.port = free_port()
        self.password, self.tls = password, tls
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        if self.tls:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={self.workdir / 'ca.crt'}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _security_args(self) -> list[str]:
        args = ["--requirepass", self.password] if self.password else []
        if self.tls:
            make_certificates(self.workdir)
            args += [
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--tls-auth-clients",
                "no",
                "--tls-cert-file",
                str(self.workdir / "server.crt"),
                "--tls-key-file",
                str(self.workdir / "server.key"),
                "--tls-ca-cert-file",
                str(self.workdir / "ca.crt"),
            ]
        return args

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--daemonize",
                "no",
                *self._security_args(),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        wait_until(lambda: self._ping(client), timeout=15, message="redis-server to answer")

    @staticmethod
    def _ping(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


SENTINEL_MASTER = "cb-master"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


class SentinelCluster:
    """A master, one replica and three Sentinels (quorum 2) on free ports: Redis as a
    production deployment with high availability runs it, small timeouts so a failover
    takes seconds."""

    def __init__(
        self,
        workdir: Path,
        password: str | None = None,
        tls: bool = False,
        sentinel_password: str | None = None,
    ) -> None:
        self.workdir, self.password, self.tls = workdir, password, tls
        self.sentinel_password = sentinel_password
        # Each server's own password and TLS, and what it needs to replicate from the other
        # (either may be the replica after a failover).
        link = (["--masterauth", password] if password else []) + (
            ["--tls-replication", "yes"] if tls else []
        )
        self.master = RedisServer(workdir / "master", password, tls, extra_args=link)
        self.replica = RedisServer(
            workdir / "replica",
            password,
            tls,
            extra_args=[*link, "--replicaof", "127.0.0.1", str(self.master.port)],
        )
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def env(self) -> dict[str, str]:
        """The settings every process needs to find the master through the Sentinels: their
        addresses, and REDIS_URL for the master's password and TLS (its host is not used)."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        tls = f"?ssl_ca_certs={self.workdir / 'ca.crt'}" if self.tls else ""
        return {
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports),
            "REDIS_SENTINEL_MASTER": SENTINEL_MASTER,
            # Host and port are never dialled: with Sentinels only the password, db and TLS count.
            "REDIS_URL": f"{'rediss' if self.tls else 'redis'}://{auth}unused-with-sentinels:1/0{tls}",
            "REDIS_SENTINEL_PASSWORD": self.sentinel_password or "",
        }

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.tls:  # one CA for every server, so a client trusts whichever is master
            make_certificates(self.workdir)
            for server in (self.master, self.replica):
                server.workdir.mkdir(parents=True, exist_ok=True)
                for name in ("ca.crt", "server.crt", "server.key"):
                    shutil.copy(self.workdir / name, server.workdir / name)
        self.master.start()
        self.replica.start()
        wait_until(self._replica_in_sync, timeout=30, message="the replica to sync")
        for port in self.sentinel_ports:
            self.sentinels.append(self._start_sentinel(port))
        wait_until(self._sentinels_see_everyone, timeout=30, message="the Sentinels to find each other")

    def _sentinel_security(self) -> str:
        lines = [f'sentinel auth-pass {SENTINEL_MASTER} "{self.password}"'] if self.password else []
        if self.sentinel_password:
            lines.append(f'requirepass "{self.sentinel_password}"')
        if self.tls:
            certs = self.workdir
            lines += [
                f"tls-cert-file {certs / 'server.crt'}",
                f"tls-key-file {certs / 'server.key'}",
                f"tls-ca-cert-file {certs / 'ca.crt'}",
                "tls-replication yes",
                "tls-auth-clients no",
            ]
        return "".join(line + "\n" for line in lines)

    def _start_sentinel(self, port: int) -> subprocess.Popen[bytes]:
        directory = self.workdir / f"sentinel-{port}"
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "sentinel.conf"
        listen = f"port 0\ntls-port {port}\n" if self.tls else f"port {port}\n"
        config.write_text(
            f"{listen}bind 127.0.0.1\ndir {directory}\n"
            f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {self.master.port} 2\n"
            f"sentinel down-after-milliseconds {SENTINEL_MASTER} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SENTINEL_MASTER} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {SENTINEL_MASTER} 1\n" + self._sentinel_security()
        )
        process = subprocess.Popen(
            [redis_server_binary(), str(config), "--sentinel"],
            stdout=open(directory / "sentinel.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        return process

    def sentinel_client(self, index: int = 0) -> redis.Redis:
        tls = {"ssl": True, "ssl_ca_certs": str(self.workdir / "ca.crt")} if self.tls else {}
        return redis.Redis(
            "127.0.0.1",
            self.sentinel_ports[index],
            password=self.sentinel_password,
            socket_connect_timeout=0.5,
            decode_responses=True,
            **tls,
        )

    def _replica_in_sync(self) -> bool:
        info = self.replica.client().info("replication")
        return info.get("master_link_status") == "up"

    def _sentinels_see_everyone(self) -> bool:
        try:
            return all(
                len(client.sentinel_slaves(SENTINEL_MASTER)) == 1
                and len(client.sentinel_sentinels(SENTINEL_MASTER)) == 2
                for client in map(self.sentinel_client, range(3))
            )
        except redis.RedisError:
            return False

    def master_port(self) -> int | None:
        """The master's port as the Sentinels now name it."""
        try:
            address = self.sentinel_client().sentinel_get_master_addr_by_name(SENTINEL_MASTER)
        except redis.RedisError:
            return None
        return int(address[1]) if address else None

    def wait_for_promotion(self, old_port: int, timeout: float = 60) -> RedisServer:
        """Block until the Sentinels name a new master and it answers as one; return it."""

        def promoted() -> RedisServer | None:
            if self.master_port() in (None, old_port):
                return None
            server = self.master if self.master.port == self.master_port() else self.replica
            try:
                return server if server.client().info("replication")["role"] == "master" else None
            except redis.RedisError:
                return None

        return wait_until(promoted, timeout=timeout, interval=0.05, message="a replica to be promoted")

    def stop(self) -> None:
        for process in self.sentinels:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=15)
        self.sentinels.clear()
        for server in (self.master, self.replica):
            server.stop()


def make_certificates(directory: Path) -> None:
    """A throwaway CA and a server certificate for 127.0.0.1, made with openssl."""
    if (directory / "server.crt").exists():
        return

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=curriculum-builder-test-ca",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
    )


class ProcessGroup:
    """A child process started in its own session, so a signal reaches all it forked."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        refuse_in_a_fast_test(f"a process ({' '.join(map(str, argv[:3]))})")
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def stop(self, timeout: float = 20) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.signal_group(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")


def start_worker(env: dict[str, str], log_path: Path) -> ProcessGroup:
    return ProcessGroup([sys.executable, "worker.py"], env, log_path)


def start_gunicorn(env: dict[str, str], log_path: Path, workers: int = 4) -> tuple[ProcessGroup, str]:
    port = free_port()
    group = ProcessGroup(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "wsgi:app",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--graceful-timeout",
            "5",
        ],
        env,
        log_path,
    )
    base = f"http://127.0.0.1:{port}"

    def _up() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    wait_until(_up, timeout=30, message="gunicorn to listen")
    return group, base
