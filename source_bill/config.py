"""The connector's config, checked once, with messages a person can act on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .origin import UnsafeUrl, checked_url
from .timeutil import parse_instant

ENVIRONMENTS = {
    "production": "https://gateway.prod.bill.com/connect",
    "sandbox": "https://gateway.stage.bill.com/connect",
}
# BILL documents the sandbox token URL; the production one is BILL's gateway naming applied to it (overridable).
TOKEN_URLS = {
    "production": "https://auth.prod.bill.com/authx/token",
    "sandbox": "https://auth.stage.bill.com/authx/token",
}
USER_LOGIN = "user_login"
OAUTH_CLIENT_CREDENTIALS = "oauth_client_credentials"
FLAT_LOGIN_KEYS = ("username", "password", "dev_key")  # the sign-in keys of configs written before `credentials`
MAX_IN_FLIGHT = 3  # BILL: 3 concurrent requests per developer key and organization
HOURLY_LIMIT = 20_000  # BILL: requests per developer key per hour


def config_error(message: str) -> AirbyteTracedException:
    return AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.config_error)


@dataclass(frozen=True)
class UserLogin:
    """A BILL user or an AP & AR sync token: ``POST /v3/login`` with a developer key."""

    username: str
    password: str
    dev_key: str
    is_sync_token: bool = False


@dataclass(frozen=True)
class ClientCredentials:
    """OAuth client credentials: a Bearer token from ``token_url``."""

    client_id: str
    client_secret: str


Credentials = Union[UserLogin, ClientCredentials]


def upgrade(config: Mapping[str, Any]) -> Tuple[Dict[str, Any], bool]:
    """The config in its current form, and whether it had to be rewritten.

    A config written before the sign-in choice has ``username``, ``password`` and ``dev_key`` at the top; they
    move into ``credentials`` (``auth_type: user_login``) and every other key stays as it was. A config with
    both forms is refused: which one is meant cannot be guessed.
    """
    flat = [key for key in FLAT_LOGIN_KEYS if key in config]
    if "credentials" in config:
        if flat:
            raise config_error(
                f"The config has both 'credentials' and the older top-level {', '.join(flat)}. Keep one: move "
                "them into credentials (auth_type user_login), or remove credentials."
            )
        return dict(config), False
    if not flat:
        return dict(config), False
    upgraded = {key: value for key, value in config.items() if key not in FLAT_LOGIN_KEYS}
    upgraded["credentials"] = {"auth_type": USER_LOGIN, **{key: config[key] for key in flat}}
    return upgraded, True


@dataclass(frozen=True)
class BillConfig:
    credentials: Credentials
    organization_id: str
    base_url: str
    token_url: str
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
            raise config_error("The config must be a JSON object with credentials and organization_id.")
        config, _ = upgrade(config)
        if not config.get("organization_id"):
            raise config_error("The config lacks organization_id: every BILL sign-in needs it.")
        for key in ("organization_id", "environment", "start_date", "base_url", "oauth_token_url", "spend_api_token"):
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
        token_url = _check_base_url(config.get("oauth_token_url") or TOKEN_URLS[environment], "oauth_token_url")
        start_date = None
        if config.get("start_date"):
            try:
                start_date = parse_instant(config["start_date"])
            except ValueError:
                raise config_error(
                    f"start_date {config['start_date']!r} is not an ISO-8601 date-time; use e.g. 2024-01-01T00:00:00Z."
                ) from None
        return cls(
            credentials=_credentials(config.get("credentials")),
            organization_id=org,
            base_url=base_url,
            token_url=token_url,
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


def _credentials(credentials: Any) -> Credentials:
    if not isinstance(credentials, Mapping):
        raise config_error(
            "The config lacks credentials: choose a sign-in method (auth_type user_login with username, password "
            "and dev_key, or oauth_client_credentials with client_id and client_secret)."
        )
    auth_type = credentials.get("auth_type")
    if auth_type == OAUTH_CLIENT_CREDENTIALS:
        keys: Tuple[str, ...] = ("client_id", "client_secret")
    elif auth_type == USER_LOGIN:
        keys = ("username", "password", "dev_key")
    else:
        raise config_error(
            f"credentials.auth_type must be '{USER_LOGIN}' or '{OAUTH_CLIENT_CREDENTIALS}', not {auth_type!r}."
        )
    missing = [f"credentials.{key}" for key in keys if not credentials.get(key)]
    if missing:
        raise config_error(f"The config lacks {', '.join(missing)}: the {auth_type} sign-in needs all of them.")
    for key in keys:
        if not isinstance(credentials[key], str):
            raise config_error(f"'credentials.{key}' must be a string, got {type(credentials[key]).__name__}.")
    if auth_type == OAUTH_CLIENT_CREDENTIALS:
        return ClientCredentials(client_id=credentials["client_id"], client_secret=credentials["client_secret"])
    is_sync_token = credentials.get("is_sync_token", False)
    if not isinstance(is_sync_token, bool):
        raise config_error(f"'credentials.is_sync_token' must be true or false, got {is_sync_token!r}.")
    return UserLogin(
        username=credentials["username"],
        password=credentials["password"],
        dev_key=credentials["dev_key"],
        is_sync_token=is_sync_token,
    )


def _int(config: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = config.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise config_error(f"'{key}' must be a whole number from {low} to {high}, got {value!r}.")
    if not low <= value <= high:
        raise config_error(f"'{key}' must be from {low} to {high}, got {value}.")
    return value


def _check_base_url(url: str, key: str = "base_url") -> str:
    try:
        return checked_url(url, key)[0]
    except UnsafeUrl as exc:
        raise config_error(str(exc)) from None
