"""`queue.link.connection_socket`, the one read of redis-py's private ``Connection._sock``:
if a redis-py release moves it, these tests fail here, by name, not as a hung idle worker."""

from __future__ import annotations

import select
import socket

import pytest
import redis

from ironforge_nb.queue import RedisConfig
from ironforge_nb.queue.link import connection_socket
from ironforge_nb.worker.wake import Waker


def test_the_socket_of_a_connection_carries_its_replies(config: RedisConfig) -> None:
    """A connected redis-py Connection's socket is found, and it turns readable when the reply
    to a command sent on that connection arrives (what the worker's poll(2) relies on)."""
    pool = config.new_client().connection_pool
    conn = pool.make_connection()
    conn.connect()
    try:
        sock = connection_socket(conn)
        assert isinstance(sock, socket.socket) and sock.fileno() >= 0
        conn.send_command("PING")
        readable, _, _ = select.select([sock], [], [], 5)
        assert readable == [sock]
        assert conn.read_response() in (b"PONG", "PONG", True)
    finally:
        conn.disconnect()


def test_a_connection_without_a_socket_is_refused_loudly() -> None:
    """An object with no socket where redis-py keeps it (a disconnected Connection, or a
    redis-py that moved it) is a clear error naming redis-py's version, never a bad fd."""
    conn = redis.Connection()
    with pytest.raises(RuntimeError, match=r"redis-py .*_sock"):
        connection_socket(conn)


def test_the_waker_polls_that_socket(config: RedisConfig) -> None:
    """A Waker's fileno is its BLPOP connection's socket, readable once a hint is pushed."""
    key = config.keys.queue("default").wake
    waker = Waker(config, [key])
    try:
        waker.arm(5)
        config.client().lpush(key, "1")
        readable, _, _ = select.select([waker.fileno()], [], [], 5)
        assert readable == [waker.fileno()]
        waker.collect()
        assert waker.woken and not waker.pending
    finally:
        waker.close()
