"""source_bill.origin: the per-request origin check gives what the full parse gives, for any URL text."""

from __future__ import annotations

from typing import Any, List

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from source_bill import origin
from source_bill.origin import Origin, allowed, origin_of

ALLOWED = {Origin("http", "127.0.0.1", 8080), Origin("https", "api.bill.com", 443), Origin("https", "::1", 443)}
PIECES = st.sampled_from(
    [
        "http",
        "https",
        "HTTPS",
        "ftp",
        ":",
        "//",
        "/",
        "\\",
        "?",
        "#",
        "@",
        "[",
        "]",
        "::1",
        "127.0.0.1",
        "api.bill.com",
        "evil.com",
        ":8080",
        ":443",
        ".",
        "%2F",
        "%40",
        " ",
        "\t",
        "user:pw@",
        "v3/vendors",
        "page=abc",
        "x",
    ]
)


@settings(max_examples=600, deadline=None)
@given(st.lists(PIECES, max_size=10).map("".join))
@example("http://127.0.0.1:8080/v3/vendors?page=abc")
@example("http://127.0.0.1:8080\\@evil.com/v3")
@example("https://api.bill.com#@evil.com/")
@example("https://evil.com?//api.bill.com/")
@example("https://user:pw@api.bill.com/")
@example("https://api.bill.com@evil.com/")
@example("http:/127.0.0.1:8080//v3")
def test_given_any_url_text_when_checked_per_request_then_it_agrees_with_the_full_parse(url: str) -> None:
    """Breaks if the cache key ends before the authority does (e.g. at "@" or ":"): "https://api.bill.com@evil.com/"
    would then pass as api.bill.com."""
    expected = (target := origin_of(url)) is not None and target in ALLOWED
    assert allowed(url, ALLOWED) == expected


def test_given_many_pages_of_one_list_when_checked_then_the_origin_is_parsed_once() -> None:
    origin._origin_of_head.cache_clear()
    for page in range(50):
        assert allowed(f"http://127.0.0.1:8080/v3/vendors?max=100&page={page}", ALLOWED)
    assert origin._origin_of_head.cache_info().misses == 1
    assert origin._origin_of_head.cache_info().hits == 49


# --- the environment's proxy and CA settings, read once per origin -------------------------------------------
def test_given_proxy_variables_when_requests_go_out_then_settings_match_requests_and_are_read_once_per_origin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Breaks if the cache keys on less than the origin (NO_PROXY for one host would then apply to another) or
    if the environment is still read on every request."""
    import requests
    import requests.sessions

    from source_bill.client import Session

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "api.bill.com")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/tmp/bundle.pem")
    reads: List[str] = []
    real = requests.sessions.get_environ_proxies

    def counting(url: str, no_proxy: Any = None) -> Any:
        reads.append(url)
        return real(url, no_proxy=no_proxy)

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", counting)
    ours, theirs = Session(), requests.Session()
    urls = [
        "https://api.bill.com/v3/vendors?page=1",
        "https://gateway.stage.bill.com/connect/v3/vendors?page=1",
        "https://api.bill.com/v3/vendors?page=2",
        "https://gateway.stage.bill.com/connect/v3/bills?page=2",
        "https://api.bill.com:8443/v3/vendors",
    ]
    for url in urls:
        got = ours.merge_environment_settings(url, {}, None, None, None)
        assert got == theirs.merge_environment_settings(url, {}, None, None, None), url
    assert got["verify"] == "/tmp/bundle.pem"
    assert ours.merge_environment_settings(urls[0], {}, None, None, None)["proxies"] == {}
    assert (
        ours.merge_environment_settings(urls[1], {}, None, None, None)["proxies"]["https"]
        == "http://proxy.example:3128"
    )
    # requests itself read the environment once per call (5); the connector's session once per origin (3)
    assert len(reads) == 5 + 3
