"""The Settings class of each process, imported by name; a process whose
module does not exist yet is skipped with the reason, never silently."""
import importlib

import pytest

from operations.docs import PROCESSES


def settings_class(process: str) -> type:
    module, name = PROCESSES[process].split(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        pytest.skip(f"{PROCESSES[process]} is not importable yet: {error}")


def env_names(cls: type) -> set[str]:
    return {name.upper() for name in cls.model_fields}
