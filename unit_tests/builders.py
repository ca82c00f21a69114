"""Small, generic request/response builders for the requests-mock (HttpMocker) tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from airbyte_cdk.models import ConfiguredAirbyteCatalog, SyncMode
from airbyte_cdk.test.mock_http import HttpRequest, HttpResponse

import tests_support
from source_bill import SourceBill

BASE = "https://gateway.stage.bill.com/connect"
RESPONSES = Path(__file__).parent / "resource" / "http" / "response"
SESSION = "PLACEHOLDER-SESSION-ID"

CONFIG: Dict[str, Any] = {
    "username": "placeholder-user@example.com",
    "password": "placeholder-password-123",
    "organization_id": "00801PLACEHOLDER00",
    "dev_key": "placeholder-dev-key-456",
    "environment": "sandbox",
}


def config(**overrides: Any) -> Dict[str, Any]:
    return {**CONFIG, **overrides}


def source(sleeps: Optional[List[float]] = None) -> SourceBill:
    """A source whose backoff sleeps are recorded instead of slept."""
    record = sleeps if sleeps is not None else []
    return SourceBill(sleep=record.append)


def response_body(name: str) -> str:
    return (RESPONSES / f"{name}.json").read_text()


def login_request(**overrides: Any) -> HttpRequest:
    cfg = config(**overrides)
    return HttpRequest(
        f"{BASE}/v3/login",
        body={
            "username": cfg["username"],
            "password": cfg["password"],
            "organizationId": cfg["organization_id"],
            "devKey": cfg["dev_key"],
        },
    )


def login_response(session_id: str = SESSION) -> HttpResponse:
    body = json.loads(response_body("login_ok"))
    body["sessionId"] = session_id
    return HttpResponse(json.dumps(body))


def error_response(name: str, status: int, headers: Optional[Mapping[str, str]] = None) -> HttpResponse:
    return HttpResponse(response_body(name), status_code=status, headers=dict(headers or {}))


def list_request(
    path: str,
    *,
    page: Optional[str] = None,
    filters: Optional[str] = None,
    sort: Optional[str] = "updatedTime:asc",
    session_id: Optional[str] = None,
    **extra: str,
) -> HttpRequest:
    params: Dict[str, str] = {"max": "100", **extra}
    if sort:
        params["sort"] = sort
    if filters:
        params["filters"] = filters
    if page:
        params["page"] = page
    headers = {"sessionId": session_id, "devKey": CONFIG["dev_key"]} if session_id else None
    return HttpRequest(f"{BASE}/v3/{path}", query_params=params, headers=headers)


_MISSING = object()


def page_response(
    records: List[Mapping[str, Any]],
    next_page: Any = _MISSING,
    *,
    date: Optional[str] = None,
) -> HttpResponse:
    """BILL's list envelope; ``next_page`` left out means the key is absent (the last page)."""
    body: Dict[str, Any] = {"results": list(records)}
    if next_page is not _MISSING:
        body["nextPage"] = next_page
        body["prevPage"] = None
    headers = {"Date": date} if date else {}
    return HttpResponse(json.dumps(body), headers=headers)


def record(n: int, updated: str = "2024-01-01T00:00:00.000+00:00", **fields: Any) -> Dict[str, Any]:
    return {"id": f"00901REC{n:011d}", "name": f"Record {n}", "updatedTime": updated, **fields}


def records(start: int, count: int, updated: str = "2024-01-01T00:00:00.000+00:00") -> List[Dict[str, Any]]:
    return [record(i, updated) for i in range(start, start + count)]


def catalog(*names: str, mode: SyncMode = SyncMode.full_refresh) -> ConfiguredAirbyteCatalog:
    return tests_support.catalog(names, mode)
