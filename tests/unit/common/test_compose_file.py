"""docker-compose.yml checked against the code, since no Docker engine runs
here: the services, their ports, and every environment variable being a
setting the process really reads."""
import pathlib
import re

import pytest
import yaml

from tests.unit.common.process_settings import env_names, settings_class

ROOT = pathlib.Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
GRPC_PORTS = {"campaigns": 50051, "moderation": 50052, "payments": 50053}
APP_PROCESSES = {"campaigns": "campaigns", "moderation": "moderation", "payments": "payments",
                 "gateway": "gateway", "migrate": "adtech", "publisher": "publisher",
                 "bot": "bot",
                 "telegram-sandbox": "telegram-sandbox"}
SECRET = re.compile(r"SECRET|TOKEN|PASSWORD")


def environment(service: str) -> dict[str, str]:
    return {name: str(value) for name, value in (SERVICES[service].get("environment") or {}).items()}


def test_compose_has_postgres_migrate_three_services_the_publisher_the_bot_the_sandbox_and_gateway():
    assert set(SERVICES) == {"postgres", "migrate", "campaigns", "moderation", "payments", "publisher", "bot",
                             "telegram-sandbox", "gateway"}


def test_campaigns_the_publisher_and_the_bot_talk_to_the_same_bot_api():
    for service in ("campaigns", "publisher", "bot"):
        assert environment(service)["TELEGRAM_BOT_TOKEN"] == environment("telegram-sandbox")["TELEGRAM_BOT_TOKEN"]
        assert environment(service)["TELEGRAM_API_URL"] == "${TELEGRAM_API_URL:-http://telegram-sandbox:8081}"
    assert environment("telegram-sandbox")["TELEGRAM_SANDBOX_PORT"] == "8081"


def test_the_sandbox_publishes_8081_on_this_machine_only_and_is_healthy_when_its_page_answers():
    sandbox = SERVICES["telegram-sandbox"]
    # A page and a control API for people and tests on this machine: never on every interface.
    assert sandbox["ports"] == ["127.0.0.1:${TELEGRAM_SANDBOX_PUBLISHED_PORT:-8081}:8081"]
    # The page answers a loopback Host without a token; the control API would want one.
    assert sandbox["healthcheck"]["test"][-1] == "http://127.0.0.1:8081/"


def test_the_sandbox_requires_its_control_token():
    assert environment("telegram-sandbox")["TELEGRAM_SANDBOX_CONTROL_TOKEN"] == \
        "${TELEGRAM_SANDBOX_CONTROL_TOKEN:?set TELEGRAM_SANDBOX_CONTROL_TOKEN}"


def test_the_bot_runs_like_the_publisher_on_the_campaigns_database():
    bot = SERVICES["bot"]
    assert bot["command"] == ["python", "-m", "services.campaigns.bot"]
    assert bot["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in ("DATABASE_URL", "CAMPAIGNS_DATABASE", "TELEGRAM_API_URL", "TELEGRAM_BOT_TOKEN"):
        assert environment("bot")[name] == environment("publisher")[name], name


def test_the_test_overlay_publishes_only_on_loopback_and_only_services_of_the_stack():
    class Loader(yaml.SafeLoader):
        pass
    Loader.add_constructor("!override", lambda loader, node: loader.construct_sequence(node))
    overlay = yaml.load((ROOT / "tests" / "compose" / "docker-compose.test.yml").read_text(), Loader)["services"]
    assert set(overlay) <= set(SERVICES)
    for name, service in overlay.items():
        assert all(port.startswith("127.0.0.1:${") for port in service["ports"]), name


@pytest.mark.parametrize("service", sorted(APP_PROCESSES))
def test_every_environment_variable_is_a_setting_of_that_process(service):
    cls = settings_class(APP_PROCESSES[service])
    unknown = set(environment(service)) - env_names(cls)
    assert not unknown, f"{service} sets variables its Settings does not read: {sorted(unknown)}"


@pytest.mark.parametrize("context", sorted(GRPC_PORTS))
def test_each_service_listens_on_its_design_port_and_is_checked_there(context):
    port = GRPC_PORTS[context]
    service = SERVICES[context]
    assert environment(context)[f"{context.upper()}_PORT"] == str(port)
    assert environment(context)["GRPC_HOST"] == "0.0.0.0"
    assert [str(p) for p in service["expose"]] == [str(port)]
    assert service["healthcheck"]["test"][-1] == f"127.0.0.1:{port}"
    assert service["command"] == ["python", "-m", f"services.{context}.main"]


@pytest.mark.parametrize("context", sorted(GRPC_PORTS))
def test_settings_default_port_matches_compose(context):
    cls = settings_class(context)
    assert cls.model_fields[f"{context}_port"].default == GRPC_PORTS[context]


def test_gateway_publishes_4002_and_is_ready_only_when_services_are():
    gateway = SERVICES["gateway"]
    assert gateway["ports"] == ["${GATEWAY_PUBLISHED_PORT:-4002}:4002"]  # 4002 unless the caller picks another
    assert environment("gateway")["GATEWAY_PORT"] == "4002"
    assert gateway["command"] == ["python", "-m", "gateway.main"]
    assert "/api/health/ready" in gateway["healthcheck"]["test"][-1]
    assert set(gateway["depends_on"]) == set(GRPC_PORTS)
    assert all(dep["condition"] == "service_healthy" for dep in gateway["depends_on"].values())


def test_peer_addresses_name_the_compose_service_and_its_port():
    for service in APP_PROCESSES:
        for name, value in environment(service).items():
            if name.endswith("_ADDR"):
                context = name.removesuffix("_ADDR").lower()
                assert value == f"{context}:{GRPC_PORTS[context]}", f"{service}: {name}={value}"


def test_gateway_reaches_all_three_services_and_moderation_reaches_its_saga_peers():
    assert {"CAMPAIGNS_ADDR", "MODERATION_ADDR", "PAYMENTS_ADDR"} <= set(environment("gateway"))
    assert {"CAMPAIGNS_ADDR", "PAYMENTS_ADDR"} <= set(environment("moderation"))
    assert "PAYMENTS_ADDR" in environment("campaigns")


def test_secrets_are_required_variables_never_literal_defaults():
    for service in SERVICES:
        for name, value in environment(service).items():
            for secret in re.findall(r"\$\{(\w+)([^}]*)\}", value):
                if SECRET.search(secret[0]):
                    assert secret[1].startswith(":?"), f"{service}: {name} gives {secret[0]} a default"
            if SECRET.search(name):
                assert value.startswith("${") and ":?" in value, f"{service}: {name} is a literal"


def test_migrate_runs_once_after_postgres_and_services_wait_for_it():
    assert SERVICES["migrate"]["command"] == ["adtech", "migrate"]
    assert SERVICES["migrate"]["restart"] == "no"
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for context in GRPC_PORTS:
        assert SERVICES[context]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_one_image_built_from_the_one_dockerfile():
    images = {SERVICES[s]["image"] for s in APP_PROCESSES}
    assert images == {"adtech:local"}
    assert all(SERVICES[s]["build"] == "." for s in APP_PROCESSES)
    assert (ROOT / "Dockerfile").is_file()


def test_the_image_holds_every_package_the_project_installs():
    import re
    import tomllib
    included = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in included} - {"adtech"}  # adtech: generated in the image
    copied = set(re.findall(r"^COPY (\w+) \./\1$", (ROOT / "Dockerfile").read_text(), re.MULTILINE))
    assert packages <= copied, packages - copied


def test_every_app_service_points_at_the_same_database_server():
    urls = {environment(s)["DATABASE_URL"] for s in ("migrate", "campaigns", "moderation", "payments", "publisher", "bot")}
    assert len(urls) == 1 and urls.pop().startswith("postgresql://adtech:${POSTGRES_PASSWORD:?")
