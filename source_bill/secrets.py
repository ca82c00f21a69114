"""The secret filter: what is registered, and how BILL's words are quoted without leaking a secret or a piece of one.

Every secret (password, developer key, session ids, tokens) is registered with the CDK's filter in the forms an
output line can carry it: as written, JSON-escaped (once and twice: a message quoting a JSON body is itself JSON)
and URL-encoded. ``run.py`` passes every line the connector writes through ``mask``, whatever its message type.
"""

from __future__ import annotations

import json
from typing import Any, Set
from urllib.parse import quote, quote_plus

from airbyte_cdk.utils import airbyte_secrets_utils
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets

_LONGEST = [0]  # the longest registered form, so an excerpt can be masked before it is cut


def forms(secret: str) -> Set[str]:
    """``secret`` as it can appear in an output line (raw, JSON-escaped once or twice, URL-encoded)."""
    once = json.dumps(secret)[1:-1]
    twice = json.dumps(once)[1:-1]
    ascii_once = json.dumps(secret, ensure_ascii=False)[1:-1]
    return {secret, once, twice, ascii_once, quote(secret, safe=""), quote_plus(secret)}


def register(secret: Any) -> None:
    """Mask ``secret`` (a non-empty string) in every message from now on."""
    if not isinstance(secret, str) or not secret:
        return
    known = set(getattr(airbyte_secrets_utils, "__SECRETS_FROM_CONFIG", []))  # once each: every line pays per entry
    for form in forms(secret) - known:
        airbyte_secrets_utils.add_to_secrets(form)
        _LONGEST[0] = max(_LONGEST[0], len(form))


def mask(text: str) -> str:
    return filter_secrets(text)


def mask_bytes(data: bytes) -> bytes:
    """``mask`` for UTF-8 text as bytes (the same secrets; a UTF-8 match always falls on character boundaries)."""
    for secret in getattr(airbyte_secrets_utils, "__SECRETS_FROM_CONFIG", []):
        if secret:
            try:
                data = data.replace(str(secret).encode("utf-8"), b"****")
            except UnicodeEncodeError:  # a lone surrogate: never in UTF-8 text
                continue
    return data


def masked_excerpt(content: Any, limit: int) -> str:
    """The first ``limit`` characters of ``content`` (bytes, text or any value), masked before they are cut, so a
    secret that runs past the cut is still masked as a whole."""
    if isinstance(content, bytes):
        head = content[: (limit + max(_LONGEST[0], 512)) * 4].decode("utf-8", "replace")
    else:
        head = content if isinstance(content, str) else str(content)
    head = mask(head[: limit + max(_LONGEST[0], 512)])
    return head if len(head) <= limit else head[:limit] + "..."
