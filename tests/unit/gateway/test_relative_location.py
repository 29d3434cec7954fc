"""A redirect's Location keeps only its path and query, with one leading
slash, so no Host a client sends and no path it crafts names another site."""
import pytest

from gateway.middleware import relative_location


@pytest.mark.parametrize("location, relative", [
    (b"http://evil.example/console", b"/console"),
    (b"https://evil.example:8443/api/campaigns?limit=5", b"/api/campaigns?limit=5"),
    (b"//evil.example/x", b"/x"),
    (b"/\\evil.example/x", b"/evil.example/x"),
    (b"/console", b"/console"),
])
def test_location_is_reduced_to_path_and_query(location, relative):
    assert relative_location(location) == relative
