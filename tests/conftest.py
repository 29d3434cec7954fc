import pathlib

import pytest

from tests import harness


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> pathlib.Path:
    # Short path: the embedded server's unix socket lives under it.
    return tmp_path_factory.mktemp("d")


@pytest.fixture(scope="session")
def pg_server(data_dir) -> str:
    """One PostgreSQL server per run (embedded unless DATABASE_URL is set)."""
    return harness.pg_server_url(data_dir)
