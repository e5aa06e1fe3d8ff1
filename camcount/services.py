"""Private local RabbitMQ and PostgreSQL servers for development and tests.

The machines this project runs on have no systemd and no Docker, so both servers run as plain
background processes whose whole state lives under one folder per profile, on loopback and on
non-default ports, so that a dev stack and a test stack can run side by side with any system
installation.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")  # the /usr/sbin wrappers switch to the rabbitmq user
PG_BIN = Path("/usr/lib/postgresql/15/bin")
DB_NAME = "camcount"
PROFILES: dict[str, tuple[int, int]] = {"dev": (5682, 5442), "test": (5683, 5443)}
# sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


class ServiceError(RuntimeError):
    """A server failed to start or stop; the message carries the tail of its log."""


@dataclass(frozen=True)
class ServicesConfig:
    state_dir: Path
    amqp_port: int
    amqp_dist_port: int
    amqp_mgmt_port: int
    pg_port: int
    profile: str = "dev"
    # Also listen on this address (a multi-host test's bridge) and trust clients of its
    # network; None keeps both servers on loopback only.
    also_listen: ipaddress.IPv4Interface | None = None

    @classmethod
    def from_env(cls, profile: str = "dev") -> ServicesConfig:
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r} (expected one of {sorted(PROFILES)})")
        amqp_default, pg_default = PROFILES[profile]
        amqp = int(os.environ.get("CAMCOUNT_AMQP_PORT", amqp_default))
        pg = int(os.environ.get("CAMCOUNT_PG_PORT", pg_default))
        env_dir = os.environ.get("CAMCOUNT_STATE_DIR")
        state = Path(env_dir) if env_dir else REPO_ROOT / ".state" / profile
        state = _usable_state_dir(state.absolute(), profile, pg)
        # The dist port is set explicitly: RabbitMQ's default (port + 20000) breaks above 45535.
        return cls(state, amqp, amqp + 20000, amqp + 10000, pg, profile)

    @property
    def rabbit_dir(self) -> Path:
        return self.state_dir / "rabbitmq"

    @property
    def pg_data(self) -> Path:
        return self.state_dir / "pg"

    @property
    def rabbit_pid_file(self) -> Path:
        return self.rabbit_dir / "rabbitmq.pid"

    @property
    def node_name(self) -> str:
        # All nodes on the machine share one epmd, so the name must differ wherever ports do.
        return f"camcount-{self.profile}-{self.amqp_port}@localhost"


@dataclass(frozen=True)
class Endpoints:
    rabbitmq_url: str
    rabbitmq_management_url: str
    database_url: str

    @classmethod
    def for_config(cls, cfg: ServicesConfig) -> Endpoints:
        return cls(
            rabbitmq_url=f"amqp://guest:guest@127.0.0.1:{cfg.amqp_port}/",
            rabbitmq_management_url=f"http://guest:guest@127.0.0.1:{cfg.amqp_mgmt_port}",
            database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{cfg.pg_port}/{DB_NAME}",
        )

    def as_env(self) -> dict[str, str]:
        return {
            "RABBITMQ_URL": self.rabbitmq_url,
            "RABBITMQ_MANAGEMENT_URL": self.rabbitmq_management_url,
            "DATABASE_URL": self.database_url,
        }


def _usable_state_dir(state: Path, profile: str, pg_port: int) -> Path:
    socket_path = state / "pg" / f".s.PGSQL.{pg_port}"
    if len(os.fsencode(socket_path)) <= MAX_SOCKET_PATH and _traversable_by_postgres(state):
        return state
    digest = hashlib.sha1(os.fsencode(REPO_ROOT)).hexdigest()[:8]
    fallback = Path(f"/tmp/camcount-{profile}-{digest}")
    log.warning("state dir %s: socket path too long or not traversable by postgres; using %s",
                state, fallback)  # fmt: skip
    return fallback


def _traversable_by_postgres(path: Path) -> bool:
    if os.geteuid() != 0:
        return True  # PostgreSQL then runs as the current user, who owns the path
    try:
        pg = pwd.getpwnam("postgres")
    except KeyError:
        return True  # no postgres user: start_all reports the missing package more clearly
    for parent in [path, *path.parents]:
        try:
            st = parent.stat()
        except FileNotFoundError:
            continue  # created later by us with mode 0755
        bit = stat.S_IXUSR if st.st_uid == pg.pw_uid else stat.S_IXGRP if st.st_gid == pg.pw_gid \
            else stat.S_IXOTH  # fmt: skip
        if not st.st_mode & bit:
            return False
    return True


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _pid_alive(pid_file: Path, marker: bytes) -> int | None:
    # The marker guards against a stale pid file whose number now belongs to another process;
    # a zombie (PID 1 here does not reap) has an empty command line and so counts as dead.
    try:
        pid = int(pid_file.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    return pid if marker in cmdline else None


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return f"--- last lines of {path} ---\n" + "\n".join(text[-lines:])


def _run(cmd: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ServiceError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc.stdout


@contextlib.contextmanager
def _locked(cfg: ServicesConfig) -> Iterator[None]:
    # Two shells starting the same profile at once would otherwise race on initdb and the node.
    cfg.state_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    with (cfg.state_dir / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


# --- RabbitMQ -------------------------------------------------------------------------------


def _rabbit_env(cfg: ServicesConfig) -> dict[str, str]:
    d = cfg.rabbit_dir
    # Inherited RABBITMQ_*/ERL_* settings (say, for a system node) must not leak into ours.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
    env.update(
        HOME=str(d / "home"),  # the CLI tools find the node's .erlang.cookie here
        RABBITMQ_NODENAME=cfg.node_name,
        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
        RABBITMQ_NODE_PORT=str(cfg.amqp_port),
        RABBITMQ_DIST_PORT=str(cfg.amqp_dist_port),
        RABBITMQ_MNESIA_BASE=str(d / "mnesia"),
        RABBITMQ_LOG_BASE=str(d / "log"),
        RABBITMQ_PID_FILE=str(cfg.rabbit_pid_file),
        RABBITMQ_CONFIG_FILE=str(d / "rabbitmq.conf"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(d / "enabled_plugins"),
        RABBITMQ_CONF_ENV_FILE=str(d / "rabbitmq-env.conf"),  # not /etc/rabbitmq's
        ERL_EPMD_ADDRESS="127.0.0.1",
        ERL_CRASH_DUMP=str(d / "log" / "erl_crash.dump"),
    )
    if cfg.also_listen is not None:
        # These would override the listeners that rabbitmq.conf names for both addresses.
        del env["RABBITMQ_NODE_IP_ADDRESS"], env["RABBITMQ_NODE_PORT"]
    return env


def rabbitmqctl(cfg: ServicesConfig, *args: str) -> str:
    """Run rabbitmqctl against this profile's node (tests raise and clear alarms with it)."""
    return _run([str(RABBIT_BIN / "rabbitmqctl"), *args], env=_rabbit_env(cfg))


def _rabbit_running(cfg: ServicesConfig) -> int | None:
    # The node name is passed through the environment; its private HOME is on the command line.
    return _pid_alive(cfg.rabbit_pid_file, os.fsencode(cfg.rabbit_dir / "home"))


def _write_rabbit_files(cfg: ServicesConfig) -> None:
    d = cfg.rabbit_dir
    for sub in ("home", "mnesia", "log"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    cookie = d / "home" / ".erlang.cookie"
    if not cookie.exists():
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)  # Erlang refuses a cookie that others can read
    (d / "rabbitmq-env.conf").touch()
    (d / "enabled_plugins").write_text("[rabbitmq_management].\n")
    # guest is normally refused off loopback; the node listens only there (and on a private
    # test bridge with also_listen).
    listeners = "" if cfg.also_listen is None else (
        f"listeners.tcp.1 = 127.0.0.1:{cfg.amqp_port}\n"
        f"listeners.tcp.2 = {cfg.also_listen.ip}:{cfg.amqp_port}\n")
    (d / "rabbitmq.conf").write_text(
        "loopback_users.guest = false\n"
        f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {cfg.amqp_mgmt_port}\n"
        + listeners
    )


def _rabbit_logs(cfg: ServicesConfig) -> str:
    log_dir = cfg.rabbit_dir / "log"
    return f"{_tail(log_dir / 'startup.log', 8)}\n{_tail(log_dir / f'{cfg.node_name}.log')}"


def _start_rabbit(cfg: ServicesConfig) -> None:
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        raise ServiceError("rabbitmq-server is not installed: run scripts/bootstrap")
    d = cfg.rabbit_dir
    env = _rabbit_env(cfg)
    startup_log = d / "log" / "startup.log"
    if _rabbit_running(cfg) is not None:
        if _port_open(cfg.amqp_port):
            return
    else:
        _write_rabbit_files(cfg)
        cfg.rabbit_pid_file.unlink(missing_ok=True)
        launcher = d / "launcher.pid"
        # setsid -f: the node gets its own session (no SIGHUP/SIGINT from our terminal) and is
        # re-parented at once, so no child is left for us to reap; launcher.pid lets us notice a
        # boot that dies before writing its pid file instead of waiting out the full timeout.
        with startup_log.open("wb") as out:
            subprocess.run(
                ["setsid", "-f", "sh", "-c", 'echo $$ > "$0"; exec "$1"', launcher,
                 RABBIT_BIN / "rabbitmq-server"],
                env=env, cwd=d, stdin=subprocess.DEVNULL, stdout=out, stderr=out, check=True,
            )  # fmt: skip
        deadline = time.monotonic() + 90
        while not cfg.rabbit_pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
            if launcher.exists() and _pid_alive(launcher, b"rabbitmq-server") is None:
                raise ServiceError(f"rabbitmq failed to start\n{_rabbit_logs(cfg)}")
    wait = [str(RABBIT_BIN / "rabbitmqctl"), "wait", "--timeout", "90", str(cfg.rabbit_pid_file)]
    try:
        _run(wait, env=env)
    except ServiceError as exc:
        raise ServiceError(f"rabbitmq failed to start: {exc}\n{_rabbit_logs(cfg)}") from exc
    if not _port_open(cfg.amqp_port):
        raise ServiceError(f"rabbitmq booted but 127.0.0.1:{cfg.amqp_port} refuses connections")


def _stop_rabbit(cfg: ServicesConfig) -> bool:
    pid = _rabbit_running(cfg)
    env = _rabbit_env(cfg)
    if pid is not None:
        ctl = [str(RABBIT_BIN / "rabbitmqctl"), "shutdown", "--timeout", "60"]
        if subprocess.run(ctl, env=env, capture_output=True, check=False).returncode != 0:
            _terminate(pid)
        cfg.rabbit_pid_file.unlink(missing_ok=True)
    # epmd outlives the broker. It refuses -kill while another node (say the other profile) is
    # still registered, which is what we want, so its failure is not an error.
    if shutil.which("epmd"):
        subprocess.run(["epmd", "-kill"], env=env, capture_output=True, check=False)
    return pid is not None


def _terminate(pid: int) -> None:
    # Fallback when the CLI cannot reach the node (lost cookie, half-booted node).
    with contextlib.suppress(OSError):  # gone (or reaped) by the time we look
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}/cmdline").read_bytes() and time.monotonic() < deadline:
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)


# --- PostgreSQL -----------------------------------------------------------------------------


def _as_pg(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _pg_env() -> dict[str, str]:
    # PGHOST, PGDATABASE, PGOPTIONS... from the caller's shell would redirect our own calls.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _pg_running(cfg: ServicesConfig) -> int | None:
    return _pid_alive(cfg.pg_data / "postmaster.pid", os.fsencode(cfg.pg_data))


def _chown_pg(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def _psql(cfg: ServicesConfig, sql: str) -> str:
    cmd = [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(cfg.pg_port), "-U", "postgres"]
    return _run([*cmd, "-d", "postgres", "-XtAc", sql], env=_pg_env()).strip()


def _start_pg(cfg: ServicesConfig) -> None:
    if not (PG_BIN / "pg_ctl").exists():
        raise ServiceError("postgresql-15 is not installed: run scripts/bootstrap")
    data = cfg.pg_data
    server_log = cfg.state_dir / "postgresql.log"
    if _pg_running(cfg) is None:
        if not (data / "PG_VERSION").exists():
            data.mkdir(mode=0o700, exist_ok=True)
            _chown_pg(data)
            initdb = [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
            _run(_as_pg([*initdb, "-E", "UTF8", "--locale=C.UTF-8"]), _pg_env(), cfg.state_dir)
            with (data / "postgresql.conf").open("a") as fh:
                fh.write("\ninclude_if_exists = 'camcount.conf'\n")
        # Rewritten on every start so that a changed CAMCOUNT_PG_PORT takes effect.
        conf = data / "camcount.conf"
        also = "" if cfg.also_listen is None else f",{cfg.also_listen.ip}"
        if cfg.also_listen is not None:
            _trust_network(data / "pg_hba.conf", cfg.also_listen.network)
        conf.write_text(
            f"listen_addresses = '127.0.0.1{also}'\n"
            f"port = {cfg.pg_port}\n"
            f"unix_socket_directories = '{data}'\n"
            "max_connections = 200\nshared_buffers = 128MB\n"
        )
        _chown_pg(conf)
        server_log.touch()
        _chown_pg(server_log)
        ctl = [str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(server_log), "-w", "-t", "60"]
        try:
            _run(_as_pg([*ctl, "start"]), _pg_env(), cfg.state_dir)
        except ServiceError as exc:
            raise ServiceError(f"postgresql failed to start: {exc}\n{_tail(server_log)}") from exc
    if _psql(cfg, f"select 1 from pg_database where datname = '{DB_NAME}'") != "1":
        _psql(cfg, f"create database {DB_NAME}")


def _trust_network(hba: Path, network: ipaddress.IPv4Network) -> None:
    line = f"host all all {network} trust\n"
    if line not in hba.read_text():
        with hba.open("a") as fh:
            fh.write(line)


def _stop_pg(cfg: ServicesConfig) -> bool:
    if _pg_running(cfg) is None:
        return False
    ctl = [str(PG_BIN / "pg_ctl"), "-D", str(cfg.pg_data), "-m", "fast", "-w", "-t", "60", "stop"]
    _run(_as_pg(ctl), _pg_env(), cfg.state_dir)
    return True


# --- public API -----------------------------------------------------------------------------


def start_all(cfg: ServicesConfig) -> Endpoints:
    """Start both servers unless they already run; safe to call again at any time."""
    with _locked(cfg):
        t0 = time.monotonic()
        _start_rabbit(cfg)
        where = f"127.0.0.1:{cfg.amqp_port} (management {cfg.amqp_mgmt_port})"
        print(f"rabbitmq ready on {where} [{time.monotonic() - t0:.1f}s]", flush=True)
        t0 = time.monotonic()
        _start_pg(cfg)
        where = f"127.0.0.1:{cfg.pg_port} (database {DB_NAME})"
        print(f"postgresql ready on {where} [{time.monotonic() - t0:.1f}s]", flush=True)
    return Endpoints.for_config(cfg)


def stop_all(cfg: ServicesConfig) -> None:
    """Stop both servers; quiet when they are not running."""
    if not cfg.state_dir.exists():
        return
    with _locked(cfg):
        if _stop_rabbit(cfg):
            print("rabbitmq stopped", flush=True)
        if _stop_pg(cfg):
            print("postgresql stopped", flush=True)


def stop_one(cfg: ServicesConfig, server: str) -> None:
    """Stop one server, gracefully (fault tests restart each alone); start_all starts it again."""
    stoppers = {"rabbitmq": _stop_rabbit, "postgresql": _stop_pg}
    with _locked(cfg):
        stoppers[server](cfg)


def status(cfg: ServicesConfig) -> dict[str, str]:
    """Running or stopped per server, from pid files and a TCP connect (no slow CLI calls)."""
    rabbit = _rabbit_running(cfg) is not None and _port_open(cfg.amqp_port)
    pg = _pg_running(cfg) is not None and _port_open(cfg.pg_port)
    return {
        "rabbitmq": "running" if rabbit else "stopped",
        "postgresql": "running" if pg else "stopped",
    }
