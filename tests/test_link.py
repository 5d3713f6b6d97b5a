"""`queue.link.spinning`: calls that poll their socket for the reply instead of sleeping.

What a spinning call sends and returns is what a plain call does; the difference is where its
thread waits: polling (its CPU time grows with the wait, up to the budget) or asleep in
``recv`` (none). Checked with a BLPOP that Redis answers only after its timeout."""

from __future__ import annotations

import time

import pytest
from redis.exceptions import ResponseError

from ironforge_nb.queue import RedisConfig
from ironforge_nb.queue.link import Link, spinning


def cpu_of(call: object) -> tuple[float, object]:
    """(CPU seconds of this thread, reply) of ``call()``."""
    start = time.thread_time()
    reply = call()  # type: ignore[operator]
    return time.thread_time() - start, reply


def test_a_spinning_call_returns_what_a_plain_call_returns(config: RedisConfig) -> None:
    """Same command, same reply, errors included; the budget is this block's only."""
    link = Link.of(config.client())
    with spinning(0.01):
        assert link.call(("PING",)) == b"PONG"
        with spinning(0.0):
            assert link.call(("ECHO", "x")) == b"x"
        assert link.call(("ECHO", "y")) == b"y"
        with pytest.raises(ResponseError, match="unknown command"):
            link.call(("NO-SUCH-COMMAND",))
    assert link.call(("PING",)) == b"PONG"


def test_a_spinning_call_polls_for_its_reply_up_to_its_budget(config: RedisConfig,
                                                               namespace: str) -> None:
    """A BLPOP answered after 300 ms: a plain call sleeps through it (almost no CPU), a call
    with a budget of 2 s polls through it (its CPU time is most of the wait, a third at least
    on a loaded machine), and one with a budget of 20 ms polls about that long, then sleeps."""
    link = Link.of(config.client())
    wait = ("BLPOP", f"{{{namespace}}}:nothing", "0.3")
    plain, reply = cpu_of(lambda: link.call(wait))
    assert reply is None and plain < 0.05
    with spinning(2.0):
        spun, reply = cpu_of(lambda: link.call(wait))
    assert reply is None and spun > 0.1
    with spinning(0.02):
        short, reply = cpu_of(lambda: link.call(wait))
    assert reply is None and short < 0.15
