from __future__ import annotations

from typing import Iterator

import pytest
from airbyte_cdk.test.mock_http import HttpMocker


@pytest.fixture
def http_mocker() -> Iterator[HttpMocker]:
    """requests-mock through the CDK's HttpMocker; every registered response must be used, exactly."""
    mocker = HttpMocker()
    with mocker:
        yield mocker
        mocker._validate_all_matchers_called()
