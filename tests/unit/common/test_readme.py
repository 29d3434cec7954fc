"""The README documents every setting of every process, and the commands
and diagram the foundation promises."""
import pathlib
import re

import pytest

from operations.docs import PROCESSES
from tests.unit.common.process_settings import env_names, settings_class

README = (pathlib.Path(__file__).resolve().parents[3] / "README.md").read_text()


def table_settings() -> set[str]:
    start, end = README.index("<!-- settings:start -->"), README.index("<!-- settings:end -->")
    return set(re.findall(r"^\| `([A-Z0-9_]+)` \|", README[start:end], flags=re.M))


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_every_setting_of_the_process_is_in_the_readme_table(process):
    missing = env_names(settings_class(process)) - table_settings()
    assert not missing, f"README settings table lacks {sorted(missing)} (regenerate: .venv/bin/adtech settings-table --write README.md)"


def test_readme_names_the_two_commands():
    assert "make run" in README and "make test" in README


def test_readme_diagram_shows_every_call_between_services():
    diagram = README[README.index("```mermaid"):]
    diagram = diagram[:diagram.index("```", 3)]
    for call in ("ReserveTarget", "ReleaseTarget", "ApproveTarget", "HoldEscrow", "RefundEscrow"):
        assert call in diagram
    for edge in ("gateway -->|gRPC| campaigns", "gateway -->|gRPC| moderation", "gateway -->|gRPC| payments"):
        assert edge in diagram


def test_settings_table_write_replaces_only_the_marked_block(tmp_path):
    import operations as cli

    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- settings:start -->\nold\n<!-- settings:end -->\noutro\n")
    with pytest.raises(SystemExit) as stopped:
        cli.main(["settings-table", "--write", str(readme)])
    assert stopped.value.code == 0
    text = readme.read_text()
    assert text.startswith("intro\n<!-- settings:start -->\n| Setting |") and text.endswith("<!-- settings:end -->\noutro\n")
    assert "\nold\n" not in text and "| `DATABASE_URL` |" in text
