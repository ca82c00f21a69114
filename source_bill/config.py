"""The connector's config, checked once, with messages a person can act on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping, Optional

from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .origin import UnsafeUrl, checked_url
from .timeutil import parse_instant

ENVIRONMENTS = {
    "production": "https://gateway.prod.bill.com/connect",
    "sandbox": "https://gateway.stage.bill.com/connect",
}
MAX_IN_FLIGHT = 3  # BILL: 3 concurrent requests per developer key and organization
HOURLY_LIMIT = 20_000  # BILL: requests per developer key per hour


def config_error(message: str) -> AirbyteTracedException:
    return AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.config_error)


@dataclass(frozen=True)
class BillConfig:
    username: str
    password: str
    organization_id: str
    dev_key: str
    base_url: str
    environment: str = "production"
    start_date: Optional[datetime] = None
    max_concurrent_requests: int = MAX_IN_FLIGHT
    requests_per_hour: int = HOURLY_LIMIT
    rate_limit_max_wait_minutes: int = 60
    spend_api_token: Optional[str] = None  # BILL Spend & Expense API token (header apiToken)
    file_transfer: bool = False  # delivery_method use_file_transfer: the document streams also copy each file

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> BillConfig:
        if not isinstance(config, Mapping):
            raise config_error("The config must be a JSON object with username, password, organization_id and dev_key.")
        missing = [k for k in ("username", "password", "organization_id", "dev_key") if not config.get(k)]
        if missing:
            raise config_error(f"The config lacks {', '.join(missing)}: every BILL sign-in needs all four.")
        for key in (
            "username",
            "password",
            "organization_id",
            "dev_key",
            "environment",
            "start_date",
            "base_url",
            "spend_api_token",
        ):
            if key in config and config[key] is not None and not isinstance(config[key], str):
                raise config_error(f"'{key}' must be a string, got {type(config[key]).__name__}.")
        org = config["organization_id"].strip()
        if not org.startswith("008"):
            raise config_error(
                "organization_id must start with 008 (BILL organization IDs do); copy it from BILL settings."
            )
        environment = config.get("environment") or "production"
        if environment not in ENVIRONMENTS:
            raise config_error(f"environment must be 'production' or 'sandbox', not {environment!r}.")
        base_url = _check_base_url(config.get("base_url") or ENVIRONMENTS[environment])
        start_date = None
        if config.get("start_date"):
            try:
                start_date = parse_instant(config["start_date"])
            except ValueError:
                raise config_error(
                    f"start_date {config['start_date']!r} is not an ISO-8601 date-time; use e.g. 2024-01-01T00:00:00Z."
                ) from None
        return cls(
            username=config["username"],
            password=config["password"],
            organization_id=org,
            dev_key=config["dev_key"],
            base_url=base_url,
            environment=environment,
            start_date=start_date,
            max_concurrent_requests=_int(config, "max_concurrent_requests", MAX_IN_FLIGHT, 1, MAX_IN_FLIGHT),
            requests_per_hour=_int(config, "requests_per_hour", HOURLY_LIMIT, 1, HOURLY_LIMIT),
            rate_limit_max_wait_minutes=_int(config, "rate_limit_max_wait_minutes", 60, 0, 24 * 60),
            spend_api_token=(config.get("spend_api_token") or "").strip() or None,
            file_transfer=_file_transfer(config.get("delivery_method")),
        )


def _file_transfer(delivery: Any) -> bool:
    """delivery_method as Airbyte's file connectors have it: {delivery_type: use_records_transfer (default) or
    use_file_transfer}."""
    if delivery is None:
        return False
    kind = delivery.get("delivery_type") if isinstance(delivery, Mapping) else None
    if kind not in ("use_records_transfer", "use_file_transfer"):
        raise config_error(
            'delivery_method must be {"delivery_type": "use_records_transfer"} or '
            '{"delivery_type": "use_file_transfer"}, not ' + repr(delivery)[:100] + "."
        )
    return bool(kind == "use_file_transfer")


def _int(config: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = config.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise config_error(f"'{key}' must be a whole number from {low} to {high}, got {value!r}.")
    if not low <= value <= high:
        raise config_error(f"'{key}' must be from {low} to {high}, got {value}.")
    return value


def _check_base_url(url: str) -> str:
    try:
        return checked_url(url, "base_url")[0]
    except UnsafeUrl as exc:
        raise config_error(str(exc)) from None
