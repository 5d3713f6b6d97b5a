"""The Lua prelude: statuses, event types and error codes are spelled once, in Python.

Every script is sent as the generated prelude + common.lua + its helpers + itself
(`queue.scripting.assemble`). A script that writes ``'active'`` by hand instead of
``JobStatus.ACTIVE`` could drift from status.py unseen; these tests fail on any such literal,
check that the prelude says what status.py and codes.py say, and that a Lua error still names
the file and line it comes from.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import pytest
from redis.exceptions import ResponseError

from ironforge_nb.queue import scripting
from ironforge_nb.queue.codes import ErrorCode
from ironforge_nb.queue.config import RedisConfig
from ironforge_nb.queue.link import Link
from ironforge_nb.status import DeliveryStatus, EventType, JobStatus, RunStatus, WebhookEvent

LUA_DIR = resources.files("ironforge_nb.queue") / "lua"
FILES = sorted(p.name for p in LUA_DIR.iterdir() if p.name.endswith(".lua"))
SCRIPTS = [f[:-4] for f in FILES
           if f[:-4] not in {h for h, _ in scripting.HELPERS} and f != "common.lua"]
FORBIDDEN = {str(m.value) for e in (JobStatus, RunStatus, EventType, WebhookEvent) for m in e}


def _code(text: str) -> str:
    """``text`` without its comments (block comments, then line comments)."""
    text = re.sub(r"--\[(=*)\[.*?\]\1\]", lambda m: "\n" * m.group(0).count("\n"), text,
                  flags=re.S)
    return "\n".join(_strip_line_comment(line) for line in text.split("\n"))


def _strip_line_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == "\\":
                continue
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif line.startswith("--", i):
            return line[:i]
    return line


def _literals(code: str) -> list[tuple[int, str]]:
    out = []
    for n, line in enumerate(code.split("\n"), 1):
        for m in re.finditer(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"", line):
            out.append((n, m.group(1) if m.group(1) is not None else m.group(2)))
    return out


def test_the_checker_sees_a_bare_status() -> None:
    """The scan below would catch a hand-written status (and ignores comments)."""
    code = _code("-- 'active' in a comment\nif s == 'active' then end --[[ 'queued' ]]")
    assert [v for _, v in _literals(code) if v in FORBIDDEN] == ["active"]


@pytest.mark.parametrize("file", FILES)
def test_no_script_spells_a_status_or_event_by_hand(file: str) -> None:
    """Statuses and event types come from the prelude's tables, never from a literal."""
    code = _code((LUA_DIR / file).read_text())
    bare = [(n, v) for n, v in _literals(code) if v in FORBIDDEN]
    assert not bare, f"{file}: bare status/event literals (use the prelude's names): {bare}"


def test_every_status_is_one_a_script_writes() -> None:
    """Each job and run status is named in some script (scripts are the only writers of
    statuses: one that no script names is never set, like the run status 'pending' once was,
    and only misleads its readers)."""
    code = "\n".join(_code((LUA_DIR / file).read_text()) for file in FILES)
    for enum in (JobStatus, RunStatus):
        unused = [m.name for m in enum if not re.search(rf"\b{enum.__name__}\.{m.name}\b", code)]
        assert not unused, f"{enum.__name__}: no script writes {unused}"


def test_no_script_spells_an_error_code_by_hand() -> None:
    """Refusals return ErrorCode.X, not a bare negative number."""
    for file in FILES:
        code = _code((LUA_DIR / file).read_text())
        assert not re.search(r"\{\s*-\d", code), f"{file}: a bare error code"


def test_the_shared_idioms_are_written_once() -> None:
    """Redis TIME, the wait score's 2^40, the wake hints' LPUSH, the backoff's 2^(attempt-1)
    and the event XADD live in common.lua only."""
    for file in FILES:
        if file == "common.lua":
            continue
        code = _code((LUA_DIR / file).read_text())
        assert "'TIME'" not in code, file
        assert "1099511627776" not in code, file
        assert "'LPUSH', wake" not in code and "unpack(hints)" not in code, file
        assert "2 ^" not in code, file
        assert "'XADD'" not in code, file


def test_prelude_says_what_python_says() -> None:
    """Each table of constants is its Python enum, value for value, aliases included."""
    table = scripting.constants()
    for enum in (JobStatus, RunStatus, EventType, WebhookEvent, DeliveryStatus):
        assert table[enum.__name__] == {k: m.value for k, m in enum.__members__.items()}
    want = {k: int(m.value) for k, m in ErrorCode.__members__.items()}
    assert table["ErrorCode"] == want
    for name, members in table.items():
        line = next(x for x in scripting.prelude().split("\n") if x.startswith(f"-- {name}:"))
        assert all(f"{k} = " in line for k in members)


def test_prelude_values_reach_lua(config: RedisConfig) -> None:
    """Redis reads the names as Python wrote them (and a script builds no table for them)."""
    src = scripting.expand(
        "return {JobStatus.ACTIVE, EventType.LEASE_EXPIRED, ErrorCode.LEASE_LOST, "
        "ErrorCode.NOT_FOUND, WebhookEvent.JOB_FAILED}")
    assert config.client().eval(src, 0) == [b"active", b"lease_expired", -2, -1, b"job.failed"]


def test_an_unknown_name_fails_the_load() -> None:
    """A misspelt name is an error at load time naming the file and line, never a nil."""
    with pytest.raises(ValueError, match=r"x\.lua:2: JobStatus\.ACTVE is not defined"):
        scripting.expand("local a = 1\nif s == JobStatus.ACTVE then end", "x.lua")


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_name_is_replaced(name: str) -> None:
    """The text sent to Redis has a literal where each script wrote a name."""
    code = scripting.lua_source(name)
    body = code[code.index("\n", code.index("-- JobField:")):]
    assert not re.search(r"\b(JobStatus|RunStatus|EventType|ErrorCode|QueueKey|JobKey|JobField|"
                         r"WebhookEvent|DeliveryStatus)\.[A-Z]", body)


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_compiles(config: RedisConfig, name: str) -> None:
    """Each assembled script loads (within Lua's limits on locals and upvalues)."""
    assert config.client().script_load(scripting.lua_source(name))


def _line_of(name: str, needle: str) -> tuple[str, int]:
    """File and 1-based line of the first line of the assembled ``name`` holding ``needle``."""
    a = scripting.assemble(name)
    for n, line in enumerate(a.source.split("\n"), 1):
        if needle in line:
            return a.locate(n)
    raise AssertionError(needle)


def test_locate_maps_assembled_lines_back_to_files() -> None:
    """Each part's first line maps to line 1 of its file; the prelude is named as such."""
    a = scripting.assemble("complete_job")
    assert a.locate(1) == ("prelude (generated)", 1)
    for start, file in a.parts:
        assert a.locate(start) == (file, 1)
        first = (LUA_DIR / file).read_text().split("\n")[0]
        assert a.source.split("\n")[start - 1] == first
    assert _line_of("complete_job", "local function claim_ready(")[0] == "claim_helpers.lua"


@pytest.mark.parametrize(("name", "file"), [("enqueue_jobs", "enqueue_jobs.lua"),
                                           ("claim_jobs", "claim_helpers.lua")])
def test_a_lua_error_names_its_script_and_line(config: RedisConfig, name: str,
                                               file: str) -> None:
    """A runtime error in a script (here: a call made with missing ARGV) reports the file and
    line where it happened, and the script that ran, not a line of the assembled text."""
    script = scripting.LuaScript(Link.of(config.client()), name)
    with pytest.raises(ResponseError) as info:
        script(["k1", "k2", "k3", "k4", "k5", "k6"], [])
    text = str(info.value)
    m = re.search(r"(\w+\.lua):(\d+) \(in (\w+)\)", text)
    assert m, text
    assert m.group(3) == name and m.group(1) == file, text
    line = (LUA_DIR / file).read_text().split("\n")[int(m.group(2)) - 1]
    culprit = re.search(r"(?:local|field|global) '(\w+)'", text)
    if culprit:  # arithmetic on a nil: the line names it
        assert culprit.group(1) in line, (text, line)
    else:  # a nil passed to Redis: the line is the call
        assert "arguments must be" in text and "redis.call(" in line, (text, line)


def test_an_error_in_a_helper_names_the_helper(config: RedisConfig) -> None:
    """An error raised inside common.lua, called from a script, is reported at common.lua's
    line, in that script; the same check through EVAL (the source) and EVALSHA."""
    assembly = scripting.assemble("requeue_job")  # it uses wait_score
    own = assembly.parts[-1][0]  # requeue_job.lua's first line: call the helper there instead
    lines = assembly.source.split("\n")[: own - 1]
    source = "\n".join([*lines, "return wait_score('x', 1)"])
    client: Any = config.client()
    sha = client.script_load(source)
    for call in (lambda: client.eval(source, 0), lambda: client.evalsha(sha, 0)):
        with pytest.raises(ResponseError) as info:
            call()
        m = re.search(r"user_script:(\d+)", str(info.value))
        assert m, str(info.value)
        file, line = assembly.locate(int(m.group(1)))
        assert file == "common.lua"
        assert "tonumber(priority" in (LUA_DIR / file).read_text().split("\n")[line - 1]
        assert "common.lua:" in assembly.explain(str(info.value))


@pytest.mark.parametrize("name", ["heartbeat_job", "complete_job", "submit_run"])
def test_common_keeps_what_a_script_uses_and_its_line_numbers(name: str) -> None:
    """An unused common.lua definition is left out (a closure less per call) as blank lines,
    so common.lua's line numbers hold; a used one and what it uses are kept."""
    a = scripting.assemble(name)
    (start, file), (end, _) = a.parts[0], a.parts[1]
    assert file == "common.lua"
    kept = a.source.split("\n")[start - 1:end - 1]
    original = (LUA_DIR / "common.lua").read_text().split("\n")
    assert len(kept) in (len(original), len(original) - 1)  # the file's last newline
    for n, line in enumerate(kept):
        assert line in ("", original[n]), n
    rest = "\n".join(a.source.split("\n")[end - 1:])
    assert ("local function add_event(" in a.source) == ("add_event(" in rest)
