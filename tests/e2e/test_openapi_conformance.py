"""The served OpenAPI document IS the API: schemathesis reads
/api/openapi.json from the running stack (tests/e2e/conftest.py) and drives
every operation as an admin, an advertiser and a publisher, in all its
phases and with all its checks: each answer's status is documented for the
operation, its body and headers are as documented, malformed input is
refused, well-formed input is not refused as malformed, a route refuses a
missing or bad token, an unsupported method answers 405 with Allow; and
never a 5xx.

Run through schemathesis' command line: its pytest loader for a schema
served by a fixture does not run under pytest 9. CONFORMANCE_EXAMPLES sets
the examples per operation: a few in `make test`, 150 in
`make test-conformance`."""
import collections
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from tests.e2e.client import mint

EXAMPLES = int(os.environ.get("CONFORMANCE_EXAMPLES", "20"))
RUN_WITHIN_S = 900
SETTINGS = pathlib.Path(__file__).with_name("schemathesis.toml")


@pytest.mark.conformance
@pytest.mark.timeout(RUN_WITHIN_S + 60)
@pytest.mark.parametrize("role", ["admin", "advertiser", "publisher"])
def test_every_answer_is_as_the_document_says(e2e_stack, role, tmp_path):
    report, events = tmp_path / "report.json", tmp_path / "events.ndjson"
    token = mint(e2e_stack.jwt_secret, role, ttl=2 * RUN_WITHIN_S)
    run = subprocess.run(
        [pathlib.Path(sys.executable).with_name("st"), "--config-file", str(SETTINGS), "run",
         f"{e2e_stack.base_url}/api/openapi.json",
         "--checks", "all", "--max-examples", str(EXAMPLES), "--header", f"Authorization: Bearer {token}",
         "--report", "json,ndjson", "--report-json-path", str(report), "--report-ndjson-path", str(events),
         "--warnings", "off"],
        capture_output=True, text=True, timeout=RUN_WITHIN_S, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert run.returncode == 0, f"schemathesis as {role}:\n{run.stdout[-20000:]}\n{run.stderr[-3000:]}"
    operations = json.loads(report.read_text())["operations"]
    assert operations["tested"] == operations["total"], operations
    statuses = collections.Counter(re.findall(r'"status_code":\s*(\d{3})', events.read_text()))
    assert statuses and not [status for status in statuses if status >= "500"], statuses
