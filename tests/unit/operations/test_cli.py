"""The `adtech` command: tokens the gateway accepts, settings refused with
one line, the test-compose plan, busy ports named before anything starts,
and where `adtech run` and every command reach the services."""
import os
import pathlib
import socket
import subprocess
import sys
import time
import uuid

import jwt
import pytest

from adtech.payments.v1 import payments_pb2 as pb
import operations as cli
from operations.compose import COMPOSE_SECRETS, compose_plan
from operations.ops import reconcile_report
from operations.settings import CONTEXTS, CliSettings
from operations.supervisor import (BusyPort, Supervisor, banner, check_ports_free, child_env, stack_children,
                                  stack_ports)
from tests.harness import free_port

ROOT = pathlib.Path(__file__).resolve().parents[3]
SECRET = "k" * 12 + uuid.uuid4().hex


def adtech(*args: str, env: dict[str, str] | None = None, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "operations", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture
def cli_env(monkeypatch, tmp_path):
    for name in ("ADTECH_JWT_SECRET", "ADTECH_INTERNAL_TOKEN", "LOG_LEVEL", "GRPC_DEADLINE_MS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ADTECH_DATA_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def no_addresses(cli_env, monkeypatch):
    """No host, port or address of a service comes from the environment running the tests."""
    for name in ("GRPC_HOST", "GATEWAY_HOST", "GATEWAY_PORT",
                 *(f"{context.upper()}_{suffix}" for context in CONTEXTS for suffix in ("PORT", "ADDR"))):
        monkeypatch.delenv(name, raising=False)


def run_main(*args: str) -> int:
    with pytest.raises(SystemExit) as stopped:
        cli.main(list(args))
    return stopped.value.code


def test_token_round_trips_with_the_configured_secret(cli_env, monkeypatch, capsys):
    monkeypatch.setenv("ADTECH_JWT_SECRET", SECRET)
    sub = str(uuid.uuid4())
    assert run_main("token", "--role", "advertiser", "--sub", sub, "--ttl", "120") == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == sub and claims["role"] == "advertiser"
    assert 110 <= claims["exp"] - time.time() <= 121


def test_token_without_secret_uses_the_one_generated_into_the_data_dir(cli_env, capsys):
    assert run_main("token", "--role", "admin") == 0
    out = capsys.readouterr()
    stored = (cli_env / "secrets" / "ADTECH_JWT_SECRET").read_text().strip()
    claims = jwt.decode(out.out.strip(), stored, algorithms=["HS256"])
    assert claims["role"] == "admin"
    assert out.err.strip() == f"sub={claims['sub']}"


def test_token_refuses_an_unknown_role(cli_env):
    assert run_main("token", "--role", "system") == 2


def test_token_refuses_a_sub_that_is_not_a_uuid(cli_env):
    assert run_main("token", "--role", "admin", "--sub", "bob") == 2


def test_placeholder_secret_is_refused_with_one_line(tmp_path):
    done = adtech("token", "--role", "admin", env={"ADTECH_JWT_SECRET": "changeme", "ADTECH_DATA_DIR": str(tmp_path)})
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == ["config error: ADTECH_JWT_SECRET is a placeholder or shorter than 16 characters"]


@pytest.mark.parametrize("name, value", [("LOG_LEVEL", "loud"), ("GRPC_DEADLINE_MS", "soon"), ("GATEWAY_PORT", "70000")])
def test_invalid_setting_stops_with_one_line_naming_it(tmp_path, name, value):
    done = adtech("token", "--role", "admin", env={name: value, "ADTECH_DATA_DIR": str(tmp_path)})
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"config error: {name}:")


def test_busy_port_is_named_before_anything_starts(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        others = [arg for name in ("campaigns", "moderation", "payments") for arg in (f"--{name}-port", str(free_port()))]
        done = adtech("run", "--gateway-port", str(port), *others, env={"ADTECH_DATA_DIR": str(tmp_path)})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"cannot start: port {port} (--gateway-port) is in use; set --gateway-port to a free port"]
    assert not (tmp_path / "pg").exists()  # refused before the database started


def test_run_refuses_port_zero_because_peers_must_know_the_port(cli_env):
    assert run_main("run", "--payments-port", "0") == 2


def test_check_ports_free_names_every_busy_port_and_the_setting_that_moves_it():
    with socket.socket() as first, socket.socket() as second:
        for listener in (first, second):
            listener.bind(("127.0.0.1", 0))
            listener.listen()
        busy = [("MODERATION_PORT", "127.0.0.1", first.getsockname()[1]),
                ("GATEWAY_PORT", "127.0.0.1", second.getsockname()[1])]
        with pytest.raises(BusyPort) as refused:
            check_ports_free([("CAMPAIGNS_PORT", "127.0.0.1", free_port()), *busy])
    assert str(refused.value).splitlines() == [
        f"port {port} ({setting}) is in use; set {setting} to a free port" for setting, _, port in busy]


def test_stack_ports_name_the_flag_for_a_port_given_on_the_command_line(no_addresses):
    settings = CliSettings(gateway_port=24002, campaigns_port=25051)
    assert stack_ports(settings, port_flags={"gateway"}) == [
        ("PAYMENTS_PORT", "127.0.0.1", 50053), ("CAMPAIGNS_PORT", "127.0.0.1", 25051),
        ("MODERATION_PORT", "127.0.0.1", 50052), ("--gateway-port", "127.0.0.1", 24002),
        ("TELEGRAM_SANDBOX_PORT", "127.0.0.1", 8081)]


def test_stack_ports_leave_out_the_sandbox_when_a_bot_token_is_set(no_addresses):
    settings = CliSettings(telegram_bot_token="123456:" + "x" * 35)
    assert [name for name, _, _ in stack_ports(settings)] == [
        "PAYMENTS_PORT", "CAMPAIGNS_PORT", "MODERATION_PORT", "GATEWAY_PORT"]


@pytest.mark.parametrize("variables, expected", [
    ({}, {"campaigns": "127.0.0.1:50051", "moderation": "127.0.0.1:50052", "payments": "127.0.0.1:50053"}),
    ({"CAMPAIGNS_PORT": "25051", "MODERATION_PORT": "25052", "PAYMENTS_PORT": "25053"},
     {"campaigns": "127.0.0.1:25051", "moderation": "127.0.0.1:25052", "payments": "127.0.0.1:25053"}),
    ({"GRPC_HOST": "0.0.0.0", "MODERATION_PORT": "25052"}, {"moderation": "127.0.0.1:25052"}),
    ({"GRPC_HOST": "10.1.2.3", "MODERATION_PORT": "25052"}, {"moderation": "10.1.2.3:25052"}),
    ({"PAYMENTS_PORT": "25053", "PAYMENTS_ADDR": "payments.internal:7000"}, {"payments": "payments.internal:7000"}),
])
def test_services_are_reached_on_their_port_variables_unless_an_address_is_set(no_addresses, monkeypatch, variables, expected):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    settings = CliSettings()
    assert {context: settings.service_address(context) for context in expected} == expected


def test_adtech_run_gives_its_processes_the_addresses_every_command_uses(no_addresses, monkeypatch):
    monkeypatch.setenv("MODERATION_ADDR", "moderation.internal:7000")
    settings = CliSettings(campaigns_port=25051, payments_port=25053, grpc_host="0.0.0.0")
    env = child_env(settings, "postgresql://db")
    assert {context: env[f"{context.upper()}_ADDR"] for context in CONTEXTS} == {
        context: settings.service_address(context) for context in CONTEXTS}
    assert (env["CAMPAIGNS_ADDR"], env["MODERATION_ADDR"]) == ("127.0.0.1:25051", "moderation.internal:7000")


def test_compose_plan_builds_once_brings_the_stack_up_runs_e2e_and_compose_tests_and_tears_down():
    env, commands, teardown = compose_plan({"PATH": "/bin"})
    compose = ["docker", "compose", "-f", "docker-compose.yml", "-f", "tests/compose/docker-compose.test.yml"]
    assert commands[0][:2] == ["docker", "build"] and commands[0][-3:] == ["-t", "adtech:local", "."]
    assert commands[1] == [*compose, "up", "--detach", "--wait", "--no-build", "--pull", "never"]
    assert commands[2][:5] == [sys.executable, "-m", "pytest", "tests/e2e", "tests/compose"]
    assert teardown[:len(compose) + 2] == [*compose, "down", "--volumes"]
    assert env["BASE_URL"] == f"http://127.0.0.1:{env['GATEWAY_PUBLISHED_PORT']}"
    assert env["ADTECH_COMPOSE"] == " ".join(compose)


def test_compose_plan_publishes_on_ports_it_picks_and_points_verify_at_them():
    env, _, _ = compose_plan({"PATH": "/bin", "GATEWAY_PUBLISHED_PORT": "4002"})
    assert env["BASE_URL"] == "http://127.0.0.1:4002"
    ports = [env[name] for name in ("TELEGRAM_SANDBOX_PUBLISHED_PORT", "CAMPAIGNS_PUBLISHED_PORT",
                                    "MODERATION_PUBLISHED_PORT", "PAYMENTS_PUBLISHED_PORT")]
    assert "8081" not in ports and len(set(ports)) == 4
    assert env["MODERATION_ADDR"] == f"127.0.0.1:{env['MODERATION_PUBLISHED_PORT']}"


def test_compose_plan_gives_the_e2e_suite_the_sandboxs_published_url_and_control_token():
    env, _, _ = compose_plan({"PATH": "/bin", "TELEGRAM_SANDBOX_PUBLISHED_PORT": "18081"})
    assert env["E2E_SANDBOX_URL"] == "http://127.0.0.1:18081"
    assert env["E2E_SANDBOX_CONTROL_TOKEN"] == env["TELEGRAM_SANDBOX_CONTROL_TOKEN"]
    assert len(env["TELEGRAM_SANDBOX_CONTROL_TOKEN"]) >= 32
    assert compose_plan({"TELEGRAM_SANDBOX_CONTROL_TOKEN": SECRET})[0]["E2E_SANDBOX_CONTROL_TOKEN"] == SECRET


def test_compose_plan_generates_missing_secrets_and_keeps_given_ones():
    env, _, _ = compose_plan({"ADTECH_JWT_SECRET": SECRET})
    assert env["ADTECH_JWT_SECRET"] == SECRET
    assert len(env["ADTECH_INTERNAL_TOKEN"]) >= 32 and len(env["POSTGRES_PASSWORD"]) >= 32
    assert env["ADTECH_INTERNAL_TOKEN"] != env["POSTGRES_PASSWORD"]


def test_compose_secrets_are_exactly_the_ones_docker_compose_requires():
    import re

    text = (ROOT / "docker-compose.yml").read_text()
    assert set(re.findall(r"\$\{(\w+):\?", text)) == set(COMPOSE_SECRETS)


def test_test_compose_without_docker_engine_says_so_and_fails(tmp_path):
    done = adtech("test-compose", env={"PATH": str(tmp_path), "ADTECH_DATA_DIR": str(tmp_path)})
    assert done.returncode == 1
    assert "needs a Docker engine" in done.stderr


def test_test_compose_check_exits_1_with_the_reason_where_it_cannot_run(tmp_path):
    done = adtech("test-compose", "--check", env={"PATH": str(tmp_path), "ADTECH_DATA_DIR": str(tmp_path)})
    assert done.returncode == 1
    assert "docker command is not installed" in done.stdout


def test_verify_is_a_subcommand_whether_or_not_its_module_exists_yet():
    import re

    # The subcommands, exactly, as the parser's own usage line lists them.
    choices = re.search(r"\{([^}]*)\}", cli.build_parser().format_usage()).group(1)
    assert set(choices.split(",")) == {"token", "migrate", "run", "outbox", "payments", "health", "settings-table",
                                       "test-compose", "verify"}


def test_reconcile_report_fails_on_any_violation():
    response = pb.ReconcileResponse(ok=False, checks=[
        pb.ReconcileCheck(name="transactions_sum_to_zero", ok=True),
        pb.ReconcileCheck(name="no_negative_balance", ok=False, violations=2, detail="wallet 1, wallet 2")])
    table, ok = reconcile_report(response)
    assert not ok
    assert ["no_negative_balance", "NO", "2", "wallet", "1,", "wallet", "2"] in [line.split() for line in table.splitlines()]


def test_reconcile_report_with_no_checks_is_not_a_pass():
    assert reconcile_report(pb.ReconcileResponse(ok=True))[1] is False


@pytest.fixture
def sandbox_env(no_addresses, monkeypatch):
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_SANDBOX_CONTROL_TOKEN", "ADTECH_REPLICAS"):
        monkeypatch.delenv(name, raising=False)


def test_run_generates_the_sandboxs_control_token_once_and_gives_it_to_the_sandbox_alone(sandbox_env, cli_env):
    children = {child.name: child for child in stack_children(CliSettings())}
    stored = (cli_env / "secrets" / "TELEGRAM_SANDBOX_CONTROL_TOKEN").read_text().strip()
    assert len(stored) >= 32 and oct((cli_env / "secrets" / "TELEGRAM_SANDBOX_CONTROL_TOKEN").stat().st_mode)[-3:] == "600"
    assert children["telegram-sandbox"].env["TELEGRAM_SANDBOX_CONTROL_TOKEN"] == stored
    assert all("TELEGRAM_SANDBOX_CONTROL_TOKEN" not in child.env for name, child in children.items()
               if name != "telegram-sandbox")
    assert stack_children(CliSettings())[0].env["TELEGRAM_SANDBOX_CONTROL_TOKEN"] == stored  # reused
    lines = banner(CliSettings())
    assert f"telegram: the sandbox's control API (docs/sandbox.md) takes the bearer token in " \
           f"{cli_env / 'secrets' / 'TELEGRAM_SANDBOX_CONTROL_TOKEN'}" in lines


def test_a_given_control_token_is_used_and_the_banner_names_its_variable(sandbox_env, monkeypatch):
    monkeypatch.setenv("TELEGRAM_SANDBOX_CONTROL_TOKEN", SECRET)
    [sandbox] = [child for child in stack_children(CliSettings()) if child.name == "telegram-sandbox"]
    assert sandbox.env["TELEGRAM_SANDBOX_CONTROL_TOKEN"] == SECRET
    assert any(line.endswith("takes the bearer token in $TELEGRAM_SANDBOX_CONTROL_TOKEN") for line in banner(CliSettings()))


def test_a_placeholder_control_token_stops_run_before_anything_starts(tmp_path):
    done = adtech("run", env={"ADTECH_DATA_DIR": str(tmp_path), "TELEGRAM_SANDBOX_CONTROL_TOKEN": "changeme",
                              "TELEGRAM_SANDBOX_PORT": str(free_port()), "TELEGRAM_BOT_TOKEN": "",
                              **{f"{name.upper()}_PORT": str(free_port()) for name in (*CONTEXTS, "gateway")}})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "config error: TELEGRAM_SANDBOX_CONTROL_TOKEN is a placeholder or shorter than 16 characters"]
    assert not (tmp_path / "pg").exists()


def test_run_starts_one_bot_per_replica_like_the_publisher(sandbox_env):
    names = [child.name for child in stack_children(CliSettings(adtech_replicas=2, telegram_bot_token="1:" + "x" * 35))]
    assert {"bot-1", "bot-2", "publisher-1", "publisher-2"} <= set(names) and "bot" not in names
    [bot] = [child for child in stack_children(CliSettings(telegram_bot_token="1:" + "x" * 35)) if child.name == "bot"]
    assert (bot.module, bot.stage) == ("services.campaigns.bot", 1)


def test_second_run_of_an_installation_is_refused_at_once_naming_the_running_one(tmp_path):
    from operations.installation import claim

    running = claim(tmp_path, {"gateway": 24002, "campaigns": 25051})  # as a first `adtech run` holds it
    try:
        started = time.monotonic()
        done = adtech("run", env={"ADTECH_DATA_DIR": str(tmp_path), "GATEWAY_PORT": str(free_port())})
        took = time.monotonic() - started
    finally:
        running.close()
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"cannot start: `adtech run` already runs on this installation ({tmp_path.resolve()}): "
        f"pid {os.getpid()}, gateway 24002, campaigns 25051; stop it first, or set ADTECH_DATA_DIR to another directory"]
    assert took < 10  # not the reaper's 30 s wait
    assert not (tmp_path / "pg").exists()


def test_run_lock_is_free_again_once_its_holder_closes_it(tmp_path):
    from operations.installation import claim

    claim(tmp_path, {"gateway": 1}).close()
    again = claim(tmp_path, {"gateway": 2})
    again.close()
    assert (tmp_path / ".run.lock").read_text() == f"pid {os.getpid()}, gateway 2\n"


async def test_a_service_refusing_the_credential_is_named_as_another_installation(no_addresses):
    import grpc

    from operations.peers import PeerChannel

    class Refused(grpc.aio.AioRpcError):
        def __init__(self):
            super().__init__(grpc.StatusCode.UNAUTHENTICATED, None, None, "missing or bad internal credential")

    peer = PeerChannel(CliSettings(moderation_port=25052), "moderation")
    assert peer.failure(Refused()) == ("moderation: a service answered on 127.0.0.1:25052 but refused this "
                                       "installation's credential: another `make run` on this port?")


SECRET_NAMES = ("ADTECH_JWT_SECRET", "ADTECH_INTERNAL_TOKEN", "TELEGRAM_BOT_TOKEN", "TELEGRAM_SANDBOX_CONTROL_TOKEN")


def secrets_reaching_each_child(settings: CliSettings) -> dict[str, set[str]]:
    """Which secrets each child's whole environment, as the supervisor starts it, holds."""
    supervisor = Supervisor(stack_children(settings), child_env(settings, "postgresql://db"))
    return {child.name: {name for name in supervisor.env_of(child) if name.upper() in SECRET_NAMES}
            for child in supervisor.children}


def test_each_child_gets_only_the_secrets_its_settings_read(sandbox_env, monkeypatch):
    # Even secrets set in the operator's environment (any spelling) reach only their users.
    monkeypatch.setenv("ADTECH_JWT_SECRET", SECRET)
    monkeypatch.setenv("adtech_internal_token", SECRET)
    monkeypatch.setenv("TELEGRAM_SANDBOX_CONTROL_TOKEN", SECRET)
    assert secrets_reaching_each_child(CliSettings()) == {
        "gateway": {"ADTECH_JWT_SECRET", "ADTECH_INTERNAL_TOKEN"},
        "campaigns": {"ADTECH_INTERNAL_TOKEN", "TELEGRAM_BOT_TOKEN"},
        "moderation": {"ADTECH_INTERNAL_TOKEN"}, "payments": {"ADTECH_INTERNAL_TOKEN"},
        "publisher": {"TELEGRAM_BOT_TOKEN"}, "bot": {"TELEGRAM_BOT_TOKEN"},
        "telegram-sandbox": {"TELEGRAM_BOT_TOKEN", "TELEGRAM_SANDBOX_CONTROL_TOKEN"}}


def test_each_replica_gets_the_secrets_of_its_process_with_the_values_of_the_installation(sandbox_env, monkeypatch):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:" + SECRET)
    settings = CliSettings(adtech_replicas=2)
    supervisor = Supervisor(stack_children(settings), child_env(settings, "postgresql://db"))
    envs = {child.name: supervisor.env_of(child) for child in supervisor.children}
    assert "telegram-sandbox" not in envs
    assert envs["payments-2"]["ADTECH_INTERNAL_TOKEN"] == settings.internal_token()
    assert "ADTECH_JWT_SECRET" not in envs["payments-2"] and "TELEGRAM_BOT_TOKEN" not in envs["payments-2"]
    assert envs["gateway"]["ADTECH_JWT_SECRET"] == settings.jwt_secret()
    assert {envs[name]["TELEGRAM_BOT_TOKEN"] for name in ("campaigns-1", "publisher-2", "bot-1")} == {"123456:" + SECRET}
    assert not {"ADTECH_JWT_SECRET", "ADTECH_INTERNAL_TOKEN"} & set(envs["bot-2"])


def test_a_reaper_of_an_earlier_run_still_stopping_is_named_in_one_line(tmp_path, monkeypatch):
    import fcntl

    from operations import supervisor
    from operations.installation import AlreadyRunning

    monkeypatch.setattr(supervisor, "REAPER_ARMED_WITHIN_S", 1.0)
    with open(tmp_path / ".reaper.lock", "w") as earlier:  # as a crashed run's reaper holds it
        fcntl.flock(earlier, fcntl.LOCK_EX)
        with pytest.raises(AlreadyRunning) as refused:
            supervisor.start_reaper(tmp_path)
    assert str(refused.value).startswith(f"the database of an earlier run in {tmp_path} is still stopping")
