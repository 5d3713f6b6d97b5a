"""`RedisConfig` (URLs, auth, TLS, cluster, limits) and the key layout of `Keys`."""

from __future__ import annotations

import copy
import pickle
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import key_slot

from ironforge_nb.errors import ConfigError, InvalidNameError, InvalidOptionError
from ironforge_nb.local import RedisCluster, RedisServer
from ironforge_nb.local.server import free_port
from ironforge_nb.queue.config import RedisConfig
from ironforge_nb.queue.keys import Keys
from ironforge_nb.queue.lock import Lock

# -- URLs and authentication ---------------------------------------------------------------


def test_password_url_works(fresh_server: Callable[..., RedisServer]) -> None:
    """A ``redis://:password@host`` URL authenticates against a requirepass server."""
    server = fresh_server(password="pa:ss@word/!")
    cfg = RedisConfig(url=server.url, namespace="auth")
    try:
        assert cfg.client().ping()
    finally:
        cfg.close()


def test_wrong_password_fails(fresh_server: Callable[..., RedisServer]) -> None:
    """A wrong password is an authentication error, not a silent success."""
    server = fresh_server(password="right")
    cfg = RedisConfig(url=f"redis://:wrong@127.0.0.1:{server.port}/0", namespace="auth")
    try:
        with pytest.raises(redis.AuthenticationError):
            cfg.client().ping()
    finally:
        cfg.close()


def test_acl_user_limited_to_its_namespace(fresh_server: Callable[..., RedisServer]) -> None:
    """An ACL user allowed only ``{ns}:*`` keys can use locks there and nothing else."""
    server = fresh_server()
    admin = redis.Redis.from_url(server.url)
    admin.acl_setuser("app", enabled=True, passwords=["+app-secret"],
                      keys=["{team}:*"], commands=["+@all"])  # fmt: skip
    admin.close()
    cfg = RedisConfig(url=f"redis://app:app-secret@127.0.0.1:{server.port}/0", namespace="team")
    try:
        assert cfg.client().acl_whoami() == "app"
        lock = Lock("nightly", ttl=5, config=cfg)
        assert lock.acquire() and lock.release()
        with pytest.raises(redis.exceptions.NoPermissionError):
            cfg.client().set("{other}:x", 1)
    finally:
        cfg.close()


def test_unix_socket_url(fresh_server: Callable[..., RedisServer]) -> None:
    """A ``unix://`` URL (with a password) reaches a unix-socket server."""
    server = fresh_server(unix_socket=True, password="pw")
    cfg = RedisConfig(url=server.url, namespace="sock")
    try:
        assert cfg.client().ping()
    finally:
        cfg.close()


def test_repr_masks_password() -> None:
    """A config's repr never shows the password (configs get printed and logged)."""
    cfg = RedisConfig(url="rediss://app:hunter2@example.com:6380/0")
    assert "hunter2" not in repr(cfg)
    assert "app:***@example.com:6380" in repr(cfg)


def test_unsupported_url_rejected() -> None:
    """A URL scheme Redis clients cannot use is a ConfigError naming the accepted ones."""
    with pytest.raises(ConfigError, match="rediss://"):
        RedisConfig(url="http://127.0.0.1:6379")


@pytest.mark.parametrize(
    ("url", "expected"),
    [("redis+cluster://h:7000/0", "redis://h:7000/0"),
     ("rediss+cluster://h:7000/0", "rediss://h:7000/0")],
)  # fmt: skip
def test_cluster_url_scheme_sets_cluster(url: str, expected: str) -> None:
    """``redis+cluster://`` and ``rediss+cluster://`` turn cluster mode on."""
    cfg = RedisConfig(url=url)
    assert cfg.cluster and cfg.url == expected
    assert cfg.full_url == url and RedisConfig(url=cfg.full_url) == cfg


def test_full_url_of_a_cluster_keeps_the_scheme_and_masks_the_password() -> None:
    """``cluster=True`` shows in `full_url` (what local workers get) and in `masked_url`."""
    cfg = RedisConfig(url="redis://app:pw@h:7000/0", cluster=True)
    assert cfg.full_url == "redis+cluster://app:pw@h:7000/0"
    assert cfg.masked_url == "redis+cluster://app:***@h:7000/0"
    assert RedisConfig(url="redis://h:7000/0").full_url == "redis://h:7000/0"


# -- TLS -------------------------------------------------------------------------------------


@pytest.fixture
def tls_server(tmp_path: Path, fresh_server: Callable[..., RedisServer]) -> tuple[int, Path]:
    """A server with a TLS port and a self-signed certificate; returns (tls port, cert path)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    tls_port = free_port()
    fresh_server(extra_args=[
        "--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
        "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
    ])  # fmt: skip
    return tls_port, cert


def test_rediss_url_with_ca(tls_server: tuple[int, Path]) -> None:
    """A ``rediss://`` URL verifying the server against its CA works."""
    port, cert = tls_server
    cfg = RedisConfig(url=f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}", namespace="tls")
    try:
        assert cfg.client().ping()
        assert Lock("tls", ttl=5, config=cfg).acquire()
    finally:
        cfg.close()


def test_rediss_url_without_verification(tls_server: tuple[int, Path]) -> None:
    """``ssl_cert_reqs=none`` accepts a self-signed server certificate."""
    port, _ = tls_server
    url = f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none&ssl_check_hostname=false"
    cfg = RedisConfig(url=url, namespace="tls")
    try:
        assert cfg.client().ping()
    finally:
        cfg.close()


def test_rediss_url_rejects_unknown_ca(tls_server: tuple[int, Path]) -> None:
    """A self-signed certificate is refused when verification is on and no CA is given."""
    port, _ = tls_server
    cfg = RedisConfig(url=f"rediss://127.0.0.1:{port}/0", namespace="tls", retries=0)
    try:
        with pytest.raises(redis.ConnectionError, match=r"(?i)certificate"):
            cfg.client().ping()
    finally:
        cfg.close()


# -- environment, validation, copies -----------------------------------------------------------


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """``from_env`` reads IRONFORGE_REDIS_URL and IRONFORGE_NAMESPACE; overrides win."""
    monkeypatch.setenv("IRONFORGE_REDIS_URL", "redis://10.0.0.7:6380/2")
    monkeypatch.setenv("IRONFORGE_NAMESPACE", "staging")
    cfg = RedisConfig.from_env(retries=5)
    assert (cfg.url, cfg.namespace, cfg.retries) == ("redis://10.0.0.7:6380/2", "staging", 5)


def test_from_env_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the variables, ``from_env`` gives the local default Redis and namespace."""
    monkeypatch.delenv("IRONFORGE_REDIS_URL", raising=False)
    monkeypatch.delenv("IRONFORGE_NAMESPACE", raising=False)
    cfg = RedisConfig.from_env()
    assert (cfg.url, cfg.namespace) == ("redis://127.0.0.1:6379/0", "default")


def test_from_env_invalid_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad IRONFORGE_NAMESPACE is rejected when the config is built."""
    monkeypatch.setenv("IRONFORGE_NAMESPACE", "my team")
    with pytest.raises(InvalidNameError, match="namespace"):
        RedisConfig.from_env()


@pytest.mark.parametrize("namespace", ["", "a:b", "{x}", "has space", "x" * 129, "é"])
def test_invalid_namespace_rejected_before_writing(
    namespace: str, quiet_url: str
) -> None:
    """A namespace that would break the key layout raises InvalidNameError; DBSIZE is unchanged
    (a database of its own: `quiet_url`)."""
    probe = redis.Redis.from_url(quiet_url)
    before = probe.dbsize()
    with pytest.raises(InvalidNameError, match="namespace"):
        RedisConfig(url=quiet_url, namespace=namespace)
    assert probe.dbsize() == before
    probe.close()


@pytest.mark.parametrize(
    ("option", "value"),
    [("max_payload_bytes", 0), ("completed_retention", -1), ("events_maxlen", 1.5),
     ("retries", -1), ("result_ttl", 0), ("connect_timeout", -1), ("socket_timeout", 0)],
)  # fmt: skip
def test_invalid_options_rejected(option: str, value: object) -> None:
    """Out-of-range limits and timeouts raise InvalidOptionError naming the option."""
    with pytest.raises(InvalidOptionError, match=option):
        RedisConfig(**{option: value})


def test_config_pickles_without_its_client(config: RedisConfig) -> None:
    """A config (even one with a live client) pickles and copies as its settings only."""
    config.client().ping()
    for clone in (pickle.loads(pickle.dumps(config)), copy.deepcopy(config)):
        assert clone == config
        assert clone.client() is not config.client()
        clone.close()


def test_client_is_shared(config: RedisConfig) -> None:
    """``client()`` returns one shared client per config; ``new_client()`` a separate one."""
    fresh = config.new_client()
    assert config.client() is config.client()
    assert fresh is not config.client()
    fresh.close()


def test_client_reconnects_after_restart(fresh_server: Callable[..., RedisServer]) -> None:
    """After a Redis restart, the next command succeeds through reconnection with backoff."""
    server = fresh_server(appendonly=True)
    cfg = RedisConfig(url=server.url, namespace="retry")
    try:
        client = cfg.client()
        client.set("{retry}:k", "v")
        server.restart()
        assert client.get("{retry}:k") == b"v"
    finally:
        cfg.close()


def test_cluster_config_client(redis_cluster: RedisCluster) -> None:
    """A ``redis+cluster://`` config gets a cluster client; lock scripts run (no CROSSSLOT)."""
    cfg = RedisConfig(url=redis_cluster.url.replace("redis://", "redis+cluster://"),
                      namespace="cluster-cfg")  # fmt: skip
    try:
        assert len(cfg.client().get_primaries()) == 3
        lock = Lock("cluster", ttl=5, config=cfg)
        assert lock.acquire() and lock.extend() and lock.release()
    finally:
        cfg.close()


# -- keys ----------------------------------------------------------------------------------------


def _all_keys(keys: Keys) -> list[str]:
    q, r = keys.queue("default"), keys.run("run1")
    return [
        keys.job("j1"), keys.payload("j1"), keys.result("j1"), keys.queues, keys.runs,
        keys.code("abc"), keys.lock("l"), keys.workers, keys.webhooks, keys.webhook_outbox,
        keys.webhook_delivery("d1"), *vars(q).values(), *vars(r).values(),
        *vars(keys.hooks).values(),
    ]  # fmt: skip


def test_every_key_has_the_namespace_tag() -> None:
    """Every key of a namespace starts with ``{ns}:``."""
    keys = Keys("sales")
    assert all(k.startswith("{sales}:") for k in _all_keys(keys) if k)


def test_namespace_lives_in_one_cluster_slot() -> None:
    """All keys of a namespace hash to the same Redis Cluster slot (no CROSSSLOT in scripts)."""
    keys = Keys("sales")
    assert len({key_slot(k.encode()) for k in _all_keys(keys) if k}) == 1


def test_namespaces_never_share_keys() -> None:
    """Two namespaces produce disjoint key sets."""
    assert not set(_all_keys(Keys("a"))) & set(_all_keys(Keys("b")))


def test_namespace_keys_are_isolated_in_redis(config: RedisConfig, redis_client: Any) -> None:
    """Data written under one namespace is invisible from another namespace's key prefix."""
    other = config.with_namespace(config.namespace + "-b")
    redis_client.set(config.keys.lock("x"), "1")
    assert list(redis_client.scan_iter(match=other.keys.prefix + "*")) == []
    assert list(redis_client.scan_iter(match=config.keys.prefix + "*")) == [
        config.keys.lock("x").encode()
    ]


@pytest.mark.parametrize("name", ["a:b", "", "x{y}", "tab\t", "n" * 129])
def test_invalid_queue_and_run_names_rejected(name: str) -> None:
    """Queue, run and lock names that would break the layout raise InvalidNameError."""
    keys = Keys("ns")
    for build in (keys.queue, keys.run, keys.lock):
        with pytest.raises(InvalidNameError):
            build(name)


def test_masked_url_hides_the_password_everywhere_it_is_shown() -> None:
    """The config and a connection both print the URL with its password replaced by ***."""
    from ironforge_nb.local.connect import Connection

    cfg = RedisConfig(url="redis://app:s3cret@example.com:6380/0", namespace="ns")
    assert cfg.masked_url == "redis://app:***@example.com:6380/0"
    assert Connection(cfg, None, None, None).url == cfg.masked_url
    assert RedisConfig(url="redis://example.com:6380/0").masked_url == "redis://example.com:6380/0"
