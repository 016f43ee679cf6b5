"""Access to envd: the access token, signed ``/files`` URLs and the user a request acts as."""

from __future__ import annotations

import asyncio
import os
import pwd
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from e2b import AsyncSandbox, AuthenticationException, Sandbox

from tests.envd.conftest import Envd, sdk_sandbox, start_envd, stop_envd

TOKEN = "s3cret+/token=="
UNAUTHORIZED = "unauthorized access, please provide a valid access token or method signing if supported"


@pytest.fixture(scope="module")
def secure(test_user) -> Iterator[Envd]:
    server = start_envd(*test_user, accessToken=TOKEN)
    yield server
    stop_envd(server)


@pytest.fixture()
def secure_dir(secure: Envd) -> Iterator[str]:
    entry = pwd.getpwnam(secure.user)
    path = os.path.join(secure.home, f"sec-{os.urandom(5).hex()}")
    os.mkdir(path)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    yield path
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            os.unlink(os.path.join(root, name))
        for name in dirs:
            os.rmdir(os.path.join(root, name))
    os.rmdir(path)


def with_query(url: str, **changes) -> str:
    """``url`` with some query parameters replaced (None drops one)."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def write_local(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


# -- access token ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong-token"], ids=["no-token", "wrong-token"])
def test_without_the_token_everything_is_refused(secure, secure_dir, token):
    sbx = sdk_sandbox(Sandbox, secure.url, token=token)
    path = os.path.join(secure_dir, "f.txt")
    write_local(path, b"x")
    with pytest.raises(AuthenticationException):
        sbx.commands.run("echo hi")
    with pytest.raises(AuthenticationException):
        sbx.commands.list()
    with pytest.raises(AuthenticationException):
        sbx.files.read(path)
    with pytest.raises(AuthenticationException):
        sbx.files.write(os.path.join(secure_dir, "new.txt"), "x")
    with pytest.raises(AuthenticationException):
        sbx.files.write(os.path.join(secure_dir, "new.txt"), b"x", use_octet_stream=True)
    with pytest.raises(AuthenticationException):
        sbx.files.list(secure_dir)
    with pytest.raises(AuthenticationException):
        sbx.files.exists(path)
    with pytest.raises(AuthenticationException):
        sbx.files.make_dir(os.path.join(secure_dir, "d"))
    with pytest.raises(AuthenticationException):
        sbx.files.remove(path)
    with pytest.raises(AuthenticationException):
        sbx.files.watch_dir(secure_dir)
    assert sorted(os.listdir(secure_dir)) == ["f.txt"]
    assert sbx.is_running() is True  # /health needs no token


async def test_async_without_the_token(secure, secure_dir):
    sbx = sdk_sandbox(AsyncSandbox, secure.url)
    with pytest.raises(AuthenticationException):
        await sbx.commands.run("echo hi")
    with pytest.raises(AuthenticationException):
        await sbx.files.write(os.path.join(secure_dir, "a.txt"), "x")
    with pytest.raises(AuthenticationException):
        await sbx.files.get_info(secure_dir)
    with pytest.raises(AuthenticationException):
        await sbx.files.watch_dir(secure_dir, lambda e: None)
    assert os.listdir(secure_dir) == []


def test_with_the_token_everything_works(secure, secure_dir):
    sbx = sdk_sandbox(Sandbox, secure.url, token=TOKEN)
    result = sbx.commands.run("echo hi; whoami")
    assert result.stdout.split() == ["hi", secure.user]
    path = os.path.join(secure_dir, "tok.txt")
    sbx.files.write(path, "with token")
    assert sbx.files.read(path) == "with token"
    assert sbx.files.write(path, b"octet", use_octet_stream=True).path == path
    assert sbx.files.read(path, format="bytes") == b"octet"
    assert [e.name for e in sbx.files.list(secure_dir)] == ["tok.txt"]
    assert sbx.files.exists(path)
    assert sbx.files.make_dir(os.path.join(secure_dir, "d")) is True
    sbx.files.rename(path, os.path.join(secure_dir, "d", "moved.txt"))
    assert sbx.files.get_info(os.path.join(secure_dir, "d", "moved.txt")).size == 5
    handle = sbx.files.watch_dir(secure_dir)
    handle.get_new_events()
    handle.stop()
    sbx.files.remove(os.path.join(secure_dir, "d"))
    assert os.listdir(secure_dir) == []


async def test_async_with_the_token(secure, secure_dir):
    sbx = sdk_sandbox(AsyncSandbox, secure.url, token=TOKEN)
    result = await sbx.commands.run("echo async")
    assert result.stdout == "async\n"
    path = os.path.join(secure_dir, "a.txt")
    await sbx.files.write(path, "async token")
    assert await sbx.files.read(path) == "async token"
    events = []
    handle = await sbx.files.watch_dir(secure_dir, events.append)
    try:
        await sbx.files.write(os.path.join(secure_dir, "watched.txt"), "w")
        deadline = time.monotonic() + 5
        while "watched.txt" not in {e.name for e in events} and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    finally:
        await handle.stop()
    assert "watched.txt" in {e.name for e in events}


def test_plain_http_endpoints(secure):
    assert httpx.get(f"{secure.url}/health").status_code == 204
    for route in ("/envs", "/metrics"):
        refused = httpx.get(f"{secure.url}{route}")
        assert refused.status_code == 401
        assert refused.json() == {"code": 401, "message": UNAUTHORIZED}
        wrong = httpx.get(f"{secure.url}{route}", headers={"X-Access-Token": "nope"})
        assert wrong.status_code == 401
    envs = httpx.get(f"{secure.url}/envs", headers={"X-Access-Token": TOKEN})
    assert envs.status_code == 200
    assert envs.json()["HUTCH_SANDBOX_VAR"] == "sandbox-level"


def test_init_requires_the_current_token(test_user):
    server = start_envd(*test_user, accessToken="first")
    try:
        assert server.init(accessToken="stolen").status_code == 401
        assert server.init(accessToken="stolen", headers={"X-Access-Token": "bad"}).status_code == 401
        assert server.init(accessToken="second", headers={"X-Access-Token": "first"}).status_code == 204
        old = sdk_sandbox(Sandbox, server.url, token="first")
        with pytest.raises(AuthenticationException):
            old.files.list("/")
        new = sdk_sandbox(Sandbox, server.url, token="second")
        assert new.files.exists("/")
    finally:
        stop_envd(server)


# -- signed URLs -------------------------------------------------------------------------------------------


def test_download_url(secure, secure_dir):
    sbx = sdk_sandbox(Sandbox, secure.url, token=TOKEN)
    path = os.path.join(secure_dir, "down load ü.txt")
    write_local(path, b"signed download")
    url = sbx.download_url(path)
    query = parse_qs(urlsplit(url).query)
    assert query["signature"][0].startswith("v1_")
    assert "signature_expiration" not in query
    response = httpx.get(url)
    assert response.status_code == 200, response.text
    assert response.content == b"signed download"
    assert httpx.get(url).status_code == 200  # no expiration: reusable

    expiring = sbx.download_url(path, use_signature_expiration=120)
    assert int(parse_qs(urlsplit(expiring).query)["signature_expiration"][0]) > time.time()
    assert httpx.get(expiring).content == b"signed download"


def test_download_url_relative_path_and_user(secure, secure_dir):
    sbx = sdk_sandbox(Sandbox, secure.url, token=TOKEN)
    rel = os.path.basename(secure_dir)
    write_local(os.path.join(secure_dir, "r.txt"), b"relative")
    assert httpx.get(sbx.download_url(f"{rel}/r.txt")).content == b"relative"
    assert httpx.get(sbx.download_url(f"~/{rel}/r.txt")).content == b"relative"
    as_root = sbx.download_url(os.path.join(secure_dir, "r.txt"), user="root")
    assert parse_qs(urlsplit(as_root).query)["username"] == ["root"]
    assert httpx.get(as_root).content == b"relative"
    # The user is part of what is signed.
    assert httpx.get(with_query(as_root, username=secure.user)).status_code == 401


def test_upload_url(secure, secure_dir):
    sbx = sdk_sandbox(Sandbox, secure.url, token=TOKEN)
    path = os.path.join(secure_dir, "sub", "up.bin")
    url = sbx.upload_url(path)
    response = httpx.post(url, files={"file": ("ignored-name", b"signed upload")})
    assert response.status_code == 200, response.text
    assert response.json()[0]["path"] == path
    with open(path, "rb") as f:
        assert f.read() == b"signed upload"
    assert pwd.getpwuid(os.stat(path).st_uid).pw_name == secure.user

    expiring = sbx.upload_url(path, use_signature_expiration=60)
    response = httpx.post(expiring, content=b"raw body", headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 200, response.text
    with open(path, "rb") as f:
        assert f.read() == b"raw body"

    root_path = os.path.join(secure_dir, "root.bin")
    response = httpx.post(sbx.upload_url(root_path, user="root"), files={"file": ("x", b"r")})
    assert response.status_code == 200, response.text
    assert os.stat(root_path).st_uid == 0


def test_bad_signatures(secure, secure_dir):
    sbx = sdk_sandbox(Sandbox, secure.url, token=TOKEN)
    path = os.path.join(secure_dir, "guarded.txt")
    other = os.path.join(secure_dir, "other.txt")
    write_local(path, b"guarded")
    write_local(other, b"other")
    good = sbx.download_url(path)
    assert httpx.get(good).status_code == 200
    signature = parse_qs(urlsplit(good).query)["signature"][0]

    tampered = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    cases = {
        "tampered": with_query(good, signature=tampered),
        "no signature": with_query(good, signature=None),
        "another path": with_query(good, path=other),
        "not v1": with_query(good, signature=signature[3:]),
        "expiration added": with_query(good, signature_expiration=str(int(time.time()) + 999)),
    }
    for what, url in cases.items():
        response = httpx.get(url)
        assert response.status_code == 401, what
        assert response.json()["code"] == 401, what

    # A read signature does not allow writing, nor a write signature reading.
    assert httpx.post(good, files={"file": ("x", b"overwritten")}).status_code == 401
    upload = sbx.upload_url(path)
    assert httpx.get(upload).status_code == 401
    with open(path, "rb") as f:
        assert f.read() == b"guarded"

    # An extended expiration no longer matches the signature.
    expiring = sbx.download_url(path, use_signature_expiration=30)
    later = str(int(parse_qs(urlsplit(expiring).query)["signature_expiration"][0]) + 3600)
    assert httpx.get(with_query(expiring, signature_expiration=later)).status_code == 401


def test_expired_signature(secure, secure_dir):
    sbx = sdk_sandbox(Sandbox, secure.url, token=TOKEN)
    path = os.path.join(secure_dir, "old.txt")
    write_local(path, b"old")
    expired = sbx.download_url(path, use_signature_expiration=-5)
    response = httpx.get(expired)
    assert response.status_code == 401
    assert "expired" in response.json()["message"]
    assert (
        httpx.post(sbx.upload_url(path, use_signature_expiration=-5), files={"file": ("x", b"y")}).status_code
        == 401
    )
    with open(path, "rb") as f:
        assert f.read() == b"old"


def test_token_header_takes_precedence_over_signature(secure, secure_dir):
    sbx = sdk_sandbox(Sandbox, secure.url, token=TOKEN)
    path = os.path.join(secure_dir, "p.txt")
    write_local(path, b"p")
    bad = with_query(sbx.download_url(path), signature="v1_bogus")
    assert httpx.get(bad, headers={"X-Access-Token": TOKEN}).status_code == 200
    good = sbx.download_url(path)
    assert httpx.get(good, headers={"X-Access-Token": "wrong"}).status_code == 401


def test_unsecured_urls_need_no_signature(sandbox, workdir):
    path = os.path.join(workdir, "open.txt")
    write_local(path, b"open")
    url = sandbox.download_url(path)
    assert "signature" not in url
    assert httpx.get(url).content == b"open"
    response = httpx.post(sandbox.upload_url(path), files={"file": ("x", b"replaced")})
    assert response.status_code == 200
    with open(path, "rb") as f:
        assert f.read() == b"replaced"


# -- users -------------------------------------------------------------------------------------------------


def test_unknown_user_is_unauthenticated(sandbox, workdir):
    path = os.path.join(workdir, "u.txt")
    write_local(path, b"u")
    with pytest.raises(AuthenticationException):
        sandbox.files.read(path, user="no-such-user-xyz")
    with pytest.raises(AuthenticationException):
        sandbox.files.write(os.path.join(workdir, "v.txt"), "v", user="no-such-user-xyz")
    with pytest.raises(AuthenticationException):
        sandbox.files.write(
            os.path.join(workdir, "v.txt"), b"v", user="no-such-user-xyz", use_octet_stream=True
        )
    with pytest.raises(AuthenticationException):
        sandbox.files.list(workdir, user="no-such-user-xyz")
    with pytest.raises(AuthenticationException):
        sandbox.files.get_info(path, user="no-such-user-xyz")
    with pytest.raises(AuthenticationException):
        sandbox.files.watch_dir(workdir, user="no-such-user-xyz")
    with pytest.raises(AuthenticationException):
        sandbox.commands.run("true", user="no-such-user-xyz")
    assert os.listdir(workdir) == ["u.txt"]


def test_user_selects_home_for_relative_paths(sandbox, workdir, envd):
    rel = os.path.basename(workdir)
    sandbox.files.write(f"{rel}/mine.txt", "mine")
    assert os.path.exists(os.path.join(envd.home, rel, "mine.txt"))
    root_home = pwd.getpwnam("root").pw_dir
    assert sandbox.files.get_info("~", user="root").path == root_home
    assert sandbox.files.get_info("~").path == envd.home
