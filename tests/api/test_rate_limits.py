"""Per-team rate limits: 429 with E2B's error body and ``Retry-After``; the official SDK waits and retries."""

from __future__ import annotations

import time

import httpx
from e2b import Sandbox

from hutch.api import create_app
from hutch.api.ratelimit import RateLimiter
from hutch.config import Settings
from hutch.errors import QuotaExceeded
from hutch.runtime.fake import FakeRuntime

from .conftest import register_test_templates, serving


def test_bucket_refills_at_its_rate():
    limiter = RateLimiter(10, 2, "things")
    limiter.take("team")
    limiter.take("team")
    try:
        limiter.take("team")
    except QuotaExceeded as err:
        assert 0 < err.retry_after_s <= 0.1
    else:
        raise AssertionError("the third take within the burst of 2 was allowed")
    limiter.take("other team")  # buckets are per key
    time.sleep(0.11)
    limiter.take("team")


def test_zero_rate_never_limits():
    limiter = RateLimiter(0, 1, "things")
    for _ in range(1000):
        limiter.take("team")


def test_429_with_retry_after_and_the_sdk_retries(tmp_path):
    settings = Settings(data_dir=tmp_path)
    settings.api.creates_per_s = 1
    settings.api.creates_burst = 1
    with serving(create_app(settings, runtime=FakeRuntime())) as stack:
        register_test_templates(stack)
        key = stack.new_key()
        opts = {"api_key": key, "api_url": stack.api_url, "sandbox_url": "http://127.0.0.1:9"}
        first = Sandbox.create(template="base", **opts)
        response = httpx.post(
            f"{stack.api_url}/v2/sandboxes",
            headers={"X-API-Key": key},
            json={"templateID": "base", "metadata": {}, "envVars": {}},
        )
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) >= 1
        assert response.json()["code"] == 429 and "rate limit" in response.json()["message"]
        # The SDK honours Retry-After: its create waits about a second, then succeeds.
        started = time.monotonic()
        second = Sandbox.create(template="base", **opts)
        assert time.monotonic() - started >= 0.5
        assert second.sandbox_id != first.sandbox_id
        Sandbox.kill(first.sandbox_id, **opts)
        Sandbox.kill(second.sandbox_id, **opts)
