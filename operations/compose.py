"""`adtech test-compose` (`make test-compose`): the e2e suite against the
stack that `docker compose up` builds."""
import os
import sys

from operations.settings import CliSettings

COMPOSE_BASE_URL = "http://127.0.0.1:4002"
# Required by docker-compose.yml; the bot token is the one its Bot API
# sandbox accepts, unless the caller brings a real bot's.
COMPOSE_SECRETS = ("ADTECH_JWT_SECRET", "ADTECH_INTERNAL_TOKEN", "POSTGRES_PASSWORD", "TELEGRAM_BOT_TOKEN")


def compose_plan(env: dict[str, str]) -> tuple[dict[str, str], list[list[str]], list[str]]:
    """The environment, the commands to run in order, and the teardown command
    of `make test-compose`: up (built, waiting for healthchecks), the e2e suite
    against the gateway, then down. Secrets are generated when unset."""
    import secrets

    from sandbox import new_token

    env = dict(env)
    for name in COMPOSE_SECRETS:
        env.setdefault(name, new_token() if name == "TELEGRAM_BOT_TOKEN" else secrets.token_urlsafe(32))
    env["BASE_URL"] = env.get("BASE_URL") or COMPOSE_BASE_URL
    commands = [
        ["docker", "compose", "up", "--build", "--detach", "--wait"],
        [sys.executable, "-m", "pytest", "tests/e2e", "-q", "-p", "no:cacheprovider"],
    ]
    return env, commands, ["docker", "compose", "down", "--volumes", "--remove-orphans"]


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


def cmd_test_compose(args, settings: CliSettings) -> int:
    import shlex
    import subprocess

    env, commands, teardown = compose_plan(dict(os.environ))
    if args.dry_run:
        print(f"BASE_URL={env['BASE_URL']}")
        for command in [*commands, teardown]:
            print(shlex.join(command))
        return 0
    problem = docker_engine_problem()
    if problem:
        print(f"make test-compose needs a running Docker engine: {problem}", file=sys.stderr)
        return 1
    try:
        for command in commands:
            code = subprocess.run(command, env=env).returncode
            if code != 0:
                return code
        return 0
    finally:
        # Down even after a failure or Ctrl-C: a half-run stack would hold the ports.
        subprocess.run(teardown, env=env)
