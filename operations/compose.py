"""`adtech test-compose` (`make test-compose`): the e2e suite against the
stack that `docker compose up` builds, on a machine prepared for it
(operations/docker_machine.py) and left as it was found."""
import os
import shlex
import socket
import sys
import time

from operations.settings import CliSettings

COMPOSE_FILES = ("docker-compose.yml", "tests/compose/docker-compose.test.yml")
APP_IMAGE = "adtech:local"
# Required by docker-compose.yml; the bot token is the one its Bot API
# sandbox accepts, unless the caller brings a real bot's; the control token
# is what the e2e suite shows the sandbox's control API.
COMPOSE_SECRETS = ("ADTECH_JWT_SECRET", "ADTECH_INTERNAL_TOKEN", "POSTGRES_PASSWORD", "TELEGRAM_BOT_TOKEN",
                   "TELEGRAM_SANDBOX_CONTROL_TOKEN")
# Host ports the stack is published on (tests/compose/docker-compose.test.yml),
# free ones picked per run: nothing holds 4002 or 8081 on a shared machine.
PUBLISHED_PORTS = ("GATEWAY_PUBLISHED_PORT", "TELEGRAM_SANDBOX_PUBLISHED_PORT", "CAMPAIGNS_PUBLISHED_PORT",
                   "MODERATION_PUBLISHED_PORT", "PAYMENTS_PUBLISHED_PORT")
TESTS = ("tests/e2e", "tests/compose")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def compose_plan(env: dict[str, str], compose: list[str] | None = None
                 ) -> tuple[dict[str, str], list[list[str]], list[str]]:
    """The environment, the commands to run in order, and the teardown command
    of `make test-compose`: the app image built once, up (waiting for every
    healthcheck), the e2e and compose suites against the published ports,
    then down. Secrets and ports are picked when unset."""
    import secrets

    from sandbox import new_token

    env = dict(env)
    for name in COMPOSE_SECRETS:
        env.setdefault(name, new_token() if name == "TELEGRAM_BOT_TOKEN" else secrets.token_urlsafe(32))
    for name in PUBLISHED_PORTS:
        env.setdefault(name, str(free_port()))
    env.setdefault("COMPOSE_PROJECT_NAME", f"adtech-test-{os.getpid()}")
    compose = [*(compose or ["docker", "compose"]), *(arg for f in COMPOSE_FILES for arg in ("-f", f))]
    env["ADTECH_COMPOSE"] = shlex.join(compose)  # how tests/compose drives the stack
    env["BASE_URL"] = env.get("BASE_URL") or f"http://127.0.0.1:{env['GATEWAY_PUBLISHED_PORT']}"
    # The e2e suite drives the stack's sandbox through its control API (tests/e2e/conftest.py).
    env["E2E_SANDBOX_URL"] = f"http://127.0.0.1:{env['TELEGRAM_SANDBOX_PUBLISHED_PORT']}"
    env["E2E_SANDBOX_CONTROL_TOKEN"] = env["TELEGRAM_SANDBOX_CONTROL_TOKEN"]
    for context in ("campaigns", "moderation", "payments"):  # `adtech verify` from this machine
        env[f"{context.upper()}_ADDR"] = f"127.0.0.1:{env[f'{context.upper()}_PUBLISHED_PORT']}"
    commands = [
        ["docker", "build", "-q", "--network", "host", "-t", APP_IMAGE, "."],
        [*compose, "up", "--detach", "--wait", "--no-build", "--pull", "never"],
        [sys.executable, "-m", "pytest", *TESTS, "-q", "-p", "no:cacheprovider"],
    ]
    return env, commands, [*compose, "down", "--volumes", "--remove-orphans", "--timeout", "20"]


def docker_engine_problem() -> str | None:
    """None when a Docker engine answers, else why not (one line)."""
    import shutil
    import subprocess

    if shutil.which("docker") is None:
        return "the docker command is not installed"
    probe = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if probe.returncode != 0:
        return "no Docker engine answers (`docker info` failed)"
    return None


def machine_problem(env: dict[str, str]) -> str | None:
    """None when `make test-compose` can run here (an engine answers, or this
    process may install and start one), else why not."""
    from operations import docker_machine

    if docker_engine_problem() is None:
        return None
    problem = docker_machine.can_prepare()
    return f"{docker_engine_problem()}, and {problem}" if problem else None


def cmd_test_compose(args, settings: CliSettings) -> int:
    from operations import docker_machine

    env = dict(os.environ)
    if args.check or args.dry_run:
        problem = machine_problem(env)
        if args.check:
            print(problem or "make test-compose can run here")
            return 1 if problem else 0
        compose = docker_machine.compose_command(env) or [str(docker_machine.pinned_compose_path())]
        env, commands, teardown = compose_plan(env, compose)
        for step in docker_machine.plan(env):
            print(f"# {step}")
        print(f"BASE_URL={env['BASE_URL']}")
        for command in [*commands, teardown]:
            print(shlex.join(command))
        print("# then stop the engine if this run started it, and remove what it left")
        return 0
    problem = machine_problem(env)
    if problem:
        print(f"make test-compose needs a Docker engine: {problem}", file=sys.stderr)
        return 1
    return run_test_compose(env)


def run_test_compose(env: dict[str, str]) -> int:
    import subprocess

    from operations import docker_machine

    took: dict[str, float] = {}
    started = time.monotonic()
    try:
        with docker_machine.engine(env) as engine:
            compose = docker_machine.compose_command(engine.env) or docker_machine.install_compose()
            docker_machine.ensure_base_images(engine)
            took["engine, compose and base images"] = time.monotonic() - started
            env, commands, teardown = compose_plan(engine.env, compose)
            try:
                for label, command in zip(("app image", "up --wait", "tests"), commands):
                    mark = time.monotonic()
                    docker_machine.log(shlex.join(command))
                    if label == "app image":
                        with docker_machine.extra_ca_in_build_context():
                            code = subprocess.run(command, env=env, cwd=docker_machine.ROOT).returncode
                    else:
                        code = subprocess.run(command, env=env, cwd=docker_machine.ROOT).returncode
                    took[label] = time.monotonic() - mark
                    if code != 0:
                        if label == "up --wait":
                            subprocess.run([*teardown[:teardown.index("down")], "ps", "-a"], env=env,
                                           cwd=docker_machine.ROOT)
                            subprocess.run([*teardown[:teardown.index("down")], "logs", "--tail", "40"], env=env,
                                           cwd=docker_machine.ROOT)
                        return code
                    if label == "up --wait":
                        took["empty machine to healthy stack"] = time.monotonic() - started
                return 0
            finally:
                # Down even after a failure or Ctrl-C: a half-run stack would hold the ports.
                mark = time.monotonic()
                subprocess.run(teardown, env=env, cwd=docker_machine.ROOT)
                took["down"] = time.monotonic() - mark
    except (RuntimeError, subprocess.CalledProcessError) as error:
        print(f"make test-compose: {error}", file=sys.stderr)
        return 1
    finally:
        took["total"] = time.monotonic() - started
        docker_machine.log("took " + ", ".join(f"{label} {seconds:.0f} s" for label, seconds in took.items()))
