"""`adtech settings-table`: the README's table of every setting of every process."""
import importlib
import sys

from operations.settings import CliSettings
from common.settings import ConfigError

# Every process and its Settings class, for the README table and its test.
PROCESSES = {
    "campaigns": "services.campaigns.main:Settings",
    "moderation": "services.moderation.main:Settings",
    "payments": "services.payments.main:Settings",
    "gateway": "gateway.settings:Settings",
    "publisher": "services.campaigns.settings:PublisherSettings",
    "bot": "services.campaigns.settings:TelegramSettings",
    "telegram-sandbox": "sandbox.__main__:Settings",
    "adtech": "operations.settings:CliSettings",
}


def settings_classes() -> tuple[dict[str, type], dict[str, str]]:
    """The importable Settings classes by process, and why the others are missing."""
    found, missing = {}, {}
    for process, spec in PROCESSES.items():
        module, name = spec.split(":")
        try:
            found[process] = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as error:
            missing[process] = f"{spec}: {error}"
    return found, missing


def settings_table(classes: dict[str, type]) -> str:
    rows: dict[str, dict] = {}
    for process, cls in classes.items():
        for name, field in cls.model_fields.items():
            row = rows.setdefault(name.upper(), {"default": field.default, "meaning": field.description or "", "readers": []})
            row["readers"].append(process)
    lines = ["| Setting | Default | Meaning | Read by |", "| --- | --- | --- | --- |"]
    for name, row in sorted(rows.items()):
        default = "(generated)" if "secret" in name.lower() or "token" in name.lower() else row["default"]
        default = "(unset)" if default is None else default
        lines.append(f"| `{name}` | `{default}` | {row['meaning']} | {', '.join(row['readers'])} |")
    return "\n".join(lines)


def cmd_settings_table(args, settings: CliSettings) -> int:
    classes, missing = settings_classes()
    for reason in missing.values():
        print(f"skipped {reason}", file=sys.stderr)
    table = settings_table(classes)
    if not args.write:
        print(table)
        return 0
    start, end = "<!-- settings:start -->", "<!-- settings:end -->"
    text = args.write.read_text()
    if start not in text or end not in text:
        raise ConfigError(f"{args.write} has no {start} … {end} block")
    head, rest = text.split(start, 1)
    args.write.write_text(f"{head}{start}\n{table}\n{end}{rest.split(end, 1)[1]}")
    print(f"wrote the settings table into {args.write}", file=sys.stderr)
    return 0
