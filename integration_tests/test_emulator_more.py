"""Tests of the emulator's objects beyond the 22 lists (bill_emulator/more.py): real HTTP on 127.0.0.1."""

from __future__ import annotations

import time

import pytest
import requests

from integration_tests.bill_emulator import DEFAULT_CREDENTIALS, BillEmulator


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def emu():
    with BillEmulator(seed=3, sizes={"bills": 40, "vendors": 20, "customers": 10, "invoices": 10}) as emulator:
        yield emulator


def _session(emu: BillEmulator, username: str | None = None, password: str | None = None) -> requests.Session:
    http = requests.Session()
    answer = http.post(
        f"{emu.base_url}/v3/login",
        json={
            "username": username or DEFAULT_CREDENTIALS["username"],
            "password": password or DEFAULT_CREDENTIALS["password"],
            "organizationId": DEFAULT_CREDENTIALS["organization_id"],
            "devKey": DEFAULT_CREDENTIALS["dev_key"],
        },
        timeout=10,
    )
    answer.raise_for_status()
    http.headers.update({"sessionId": answer.json()["sessionId"], "devKey": DEFAULT_CREDENTIALS["dev_key"]})
    return http


def _get(http: requests.Session, emu: BillEmulator, path: str, **params) -> requests.Response:
    return http.get(f"{emu.base_url}{path}", params=params, timeout=10)


def test_given_an_admin_when_organization_and_billing_statements_then_one_object_and_pages(emu):
    http = _session(emu)
    org = DEFAULT_CREDENTIALS["organization_id"]
    answer = _get(http, emu, f"/v3/organizations/{org}").json()
    assert answer["id"] == org and "results" not in answer
    rows, token, pages = [], None, 0
    while True:
        body = _get(
            http, emu, f"/v3/organizations/{org}/billing-statements", max=10, **({"page": token} if token else {})
        )
        body = body.json()
        pages += 1
        rows += body["results"]
        token = body.get("nextPage")
        if not token:
            break
    assert pages == 3 and [r["id"] for r in rows] == [r["id"] for r in emu.more.statements]


def test_given_a_user_who_is_not_admin_when_organization_then_403(emu):
    http = _session(emu)
    org = DEFAULT_CREDENTIALS["organization_id"]
    emu.more.admin = False
    try:
        assert _get(http, emu, f"/v3/organizations/{org}").status_code == 403
        assert _get(http, emu, f"/v3/organizations/{org}/billing-statements").status_code == 403
    finally:
        emu.more.admin = True


def test_card_accounts_require_card_user_status_and_no_card_is_in_both(emu):
    http = _session(emu)
    missing = _get(http, emu, "/v3/funding-accounts/cards")
    assert missing.status_code == 400 and missing.json()[0]["code"] == "BDC_1001"
    verified = _get(http, emu, "/v3/funding-accounts/cards", cardUserStatus="VERIFIED").json()
    nominated = _get(http, emu, "/v3/funding-accounts/cards", cardUserStatus="NOMINATED").json()
    assert set(verified) == {"rates", "cards"}
    ids_v = {c["id"] for c in verified["cards"]}
    ids_n = {c["id"] for c in nominated["cards"]}
    assert len(ids_v) == 3 and len(ids_n) == 2 and not ids_v & ids_n


def test_bare_arrays_and_pending_approvals(emu):
    http = _session(emu)
    assert _get(http, emu, "/v3/funding-accounts/ap-cards").json() == emu.more.ap_cards
    assert _get(http, emu, "/v3/bill-approvals/policies").json() == emu.more.policies
    pending = _get(http, emu, "/v3/bill-approvals/pending-user-approvals").json()
    assert list(pending) == ["bills"] and pending["bills"] == emu.more.pending_approvals()
    assert len(pending["bills"]) > 0


def test_given_a_sync_token_session_when_pending_approvals_then_bdc_1302(emu):
    emu.more.sync_tokens["reader"] = "token-value"
    http = _session(emu, "reader", "token-value")
    answer = _get(http, emu, "/v3/bill-approvals/pending-user-approvals")
    assert answer.status_code == 400 and answer.json()[0]["code"] == "BDC_1302"
    assert _get(http, emu, "/v3/funding-accounts/ap-cards").status_code == 200


def test_children_page_carry_links_and_adding_one_bumps_the_parent(emu):
    http = _session(emu)
    bill = emu.records("bills")[5]
    for _ in range(3):
        emu.more.add_child("bills", bill["id"])
    before = emu.record("bills", bill["id"])["updatedTime"]
    emu.more.add_child("bills", bill["id"])
    assert emu.record("bills", bill["id"])["updatedTime"] >= before
    expected = emu.more.children("bills", bill["id"])
    assert len(expected) >= 4
    rows, token = [], None
    while True:
        body = _get(http, emu, f"/v3/documents/bills/{bill['id']}", max=2, **({"page": token} if token else {})).json()
        rows += body["results"]
        token = body.get("nextPage")
        if not token:
            break
    assert [{k: v for k, v in r.items() if k != "downloadLink"} for r in rows] == expected
    first = rows[0]
    data = http.get(first["downloadLink"], timeout=10)
    assert data.status_code == 200 and data.content == emu.more.file_bytes(first["id"])
    anonymous = requests.get(first["downloadLink"], timeout=10)
    assert anonymous.status_code == 401
    assert _get(http, emu, "/v3/attachments/vendors/009nope").status_code == 404


def test_parent_updated_time_moves_when_a_child_is_added():
    clock = Clock()
    with BillEmulator(seed=4, sizes={"vendors": 3}, clock=clock) as emu:
        vendor = emu.records("vendors")[0]
        clock.now += 60
        emu.more.add_child("vendors", vendor["id"])
        assert emu.record("vendors", vendor["id"])["updatedTime"] == emu.now_iso()
        assert emu.record("vendors", vendor["id"])["updatedTime"] != vendor["updatedTime"]


def test_download_links_expire_and_infected_files_are_refused():
    clock = Clock()
    with BillEmulator(seed=5, sizes={"invoices": 3}, clock=clock) as emu:
        http = _session(emu)
        invoice = emu.records("invoices")[0]
        emu.more.add_child("invoices", invoice["id"])
        emu.more.link_ttl_s = 30
        row = _get(http, emu, f"/v3/attachments/invoices/{invoice['id']}", max=100).json()["results"][-1]
        clock.now += 31
        assert http.get(row["downloadLink"], timeout=10).status_code == 403
        fresh = _get(http, emu, f"/v3/attachments/invoices/{invoice['id']}", max=100).json()["results"][-1]
        assert http.get(fresh["downloadLink"], timeout=10).status_code == 200
        emu.more.set_scan_status(fresh["id"], "INFECTED")
        assert http.get(fresh["downloadLink"], timeout=10).status_code == 403
        tampered = fresh["downloadLink"].replace("sig=", "sig=0")
        assert http.get(tampered, timeout=10).status_code == 403
