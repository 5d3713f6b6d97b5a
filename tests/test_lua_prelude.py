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

from ironforge_nb.queue import luatext, scripting
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
    """Redis TIME, the wait score's 2^40, the wake hints' LPUSH, the backoff's 2^(attempt-1),
    the event XADD and a run's event stream key live in common.lua only."""
    for file in FILES:
        if file == "common.lua":
            continue
        code = _code((LUA_DIR / file).read_text())
        assert "'TIME'" not in code, file
        assert "1099511627776" not in code, file
        assert "'LPUSH', wake" not in code and "unpack(hints)" not in code, file
        assert "2 ^" not in code, file
        assert "'XADD'" not in code, file
        assert "':events'" not in code, file  # add_run_event(run_prefix, run, ...)


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
    assembly = scripting.assemble("fail_job")  # it uses backoff_ms (which stays a function)
    own = assembly.parts[-1][0]  # fail_job.lua's first line: call the helper there instead
    lines = assembly.source.split("\n")[: own - 1]
    source = "\n".join([*lines, "return backoff_ms('x', 1, 0, 10)"])
    client: Any = config.client()
    sha = client.script_load(source)
    for call in (lambda: client.eval(source, 0), lambda: client.evalsha(sha, 0)):
        with pytest.raises(ResponseError) as info:
            call()
        m = re.search(r"user_script:(\d+)", str(info.value))
        assert m, str(info.value)
        file, line = assembly.locate(int(m.group(1)))
        assert file == "common.lua"
        assert "tonumber(base)" in (LUA_DIR / file).read_text().split("\n")[line - 1]
        assert "common.lua:" in assembly.explain(str(info.value))


def test_an_error_in_an_inlined_helper_names_its_call(config: RedisConfig) -> None:
    """A one-line helper is written out at its call (no closure, no Lua call), on the call's
    lines: an error in it is reported at the line that calls it, where the bad argument is."""
    common = scripting.expand((LUA_DIR / "common.lua").read_text())
    found = luatext.templates(common)
    assert {"add_event", "add_run_event", "wait_score"} <= {t.name for t in found}
    script = ("local now = 1\n"
              "add_run_event('run:', 'r1', 10, 'x', now,  -- a comment inside the call\n"
              "              'job', ARGV[1])\n"
              "return redis.call('XLEN', 'run:r1:events')")
    inlined = luatext.inline(script, found)
    assert "add_run_event" not in inlined and "add_event" not in inlined
    assert inlined.count("\n") == script.count("\n")
    source = common + "\n" + inlined
    first = common.count("\n") + 2  # the script's first line in `source`
    client: Any = config.client()
    assert client.eval(source, 0, "j1") == 1
    assert client.xrange("run:r1:events")[0][1] == {b"type": b"x", b"ts": b"1", b"run": b"r1",
                                                    b"job": b"j1"}
    with pytest.raises(ResponseError) as info:  # ARGV[1] is nil: XADD refuses it
        client.eval(source, 0)
    m = re.search(r"user_script:(\d+)", str(info.value))
    assert m and int(m.group(1)) - first + 1 in (2, 3), str(info.value)


_HELPERS = ("local function twice(a)\n  return a + a\nend\n"
            "local function emit(k, ...)\n  redis.call('RPUSH', k, ...)\nend\n"
            "local function sq(a, b)\n  return a * b\nend\n"
            "local function first(a, b)\n  return a\nend\n"
            "local function swap(a, b)\n  return b - a\nend\n"
            "local function noted(a)\n  return a -- a comment\nend\n"
            "local function pack(a, b)\n  return {a = a, b = b}\nend\n")
_INLINED = [  # (code, what it becomes: itself where writing the helper out could change it)
    ("x = twice(y.z)", "x = (y.z + y.z)"),
    ("x = twice(f())", "x = twice(f())"),  # f() would run twice
    ("emit('k', 1, 2)", "redis.call('RPUSH', 'k', 1, 2)"),
    ("emit('k')", "redis.call('RPUSH', 'k')"),
    ("x = emit('k', 1)", "x = emit('k', 1)"),  # a statement helper in an expression
    ("x = sq(1 + 2, 3)", "x = ((1 + 2) * 3)"),
    ("x = sq(1)", "x = sq(1)"),  # too few arguments
    ("-- sq(1, 2)\nx = 'sq(1, 2)'", "-- sq(1, 2)\nx = 'sq(1, 2)'"),  # comments, strings
    ("x = sq(a, sq(b,\n c))", "x = (a * (b * c))\n"),  # nested, the call's lines kept
    ("x = first(1, g())", "x = first(1, g())"),  # g() would not run
    ("x = first(f(), 2)", "x = ((f()))"),
    ("x = swap(f(), g())", "x = swap(f(), g())"),  # g() would run before f()
    ("x = swap(1, g())", "x = ((g()) - 1)"),
    ("x = noted(1) + 2", "x = noted(1) + 2"),  # its comment would hide "+ 2"
    ("x = pack(y, g())", "x = ({a = y, b = (g())})"),  # table keys are not parameters
]


@pytest.mark.parametrize(("code", "want"), _INLINED)
def test_inlining_keeps_what_the_code_means(code: str, want: str) -> None:
    """A helper stays a call where writing it out could change the result: a parameter read
    twice (or never) given an expression, expressions evaluated in another order, a statement
    helper inside an expression, too few arguments, a body ending in a comment; otherwise each
    argument is put in parentheses where it was."""
    assert luatext.inline(code, luatext.templates(_HELPERS)) == want


def test_a_helper_reading_a_name_declared_again_stays_a_call() -> None:
    """A body reading a name that some code declares again (here `redis`, a parameter) would
    see that other value where it is written out: it stays a call."""
    found = luatext.templates(_HELPERS)
    hidden = luatext.shadowed(["local function f(redis)\nend"], found)
    assert luatext.inline("emit('k', 1)", found, hidden) == "emit('k', 1)"


def test_wake_workers_is_written_out_as_a_block(config: RedisConfig) -> None:
    """A wake_workers(...) statement becomes a do ... end block binding its parameters, on the
    call's line, and pushes the hints the function pushed."""
    common = scripting.expand((LUA_DIR / "common.lua").read_text())
    found = luatext.templates(common)
    script = "local n = 70\nwake_workers(KEYS[1],\n  n)\nreturn redis.call('LLEN', KEYS[1])"
    inlined = luatext.inline(script, found)
    assert inlined.split("\n")[1].startswith("do local key, n = KEYS[1], n local hints = {}")
    assert inlined.count("\n") == script.count("\n")
    client: Any = config.client()
    assert client.eval(common + "\n" + inlined, 1, "wake") == 64
    assert client.eval(common + "\n" + script, 1, "wake2") == 64


def test_a_local_from_now_ms_is_written_out() -> None:
    """``local now = now_ms()``, the first line of most scripts, is the TIME call and the sum
    on that line (no closure, no call); now_ms stays a function where it is used otherwise."""
    found = luatext.templates(scripting.expand((LUA_DIR / "common.lua").read_text()))
    text = "local now = now_ms()  -- a comment\nlocal later = now_ms() + 5\n"
    assert luatext.inline(text, found) == (
        "local now = redis.call('TIME') now = tonumber(now[1]) * 1000 + "
        "math.floor(tonumber(now[2]) / 1000)  -- a comment\nlocal later = now_ms() + 5\n")
    assert "local function now_ms(" not in scripting.lua_source("complete_job")
    assert "local function now_ms(" in scripting.lua_source("update_progress")


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_line_stays_where_it_was(name: str) -> None:
    """Inlining and leaving definitions out keep each part's line count, so `Assembly.locate`
    maps every line back to its file's line; a line either is the file's or was rewritten."""
    a = scripting.assemble(name)
    lines = a.source.split("\n")
    ends = [start for start, _ in a.parts[1:]] + [len(lines)]
    for (start, file), end in zip(a.parts, ends, strict=True):
        original = (LUA_DIR / file).read_text().split("\n")
        assert end - start in (len(original), len(original) - 1), file  # its last newline
        assert lines[start - 1] == original[0]


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_function_a_script_calls_is_defined(name: str) -> None:
    """Leaving definitions out never leaves a call without its function: each name called in
    the assembled text is a Lua builtin or a local declared in it."""
    code = luatext.code_only(scripting.lua_source(name))
    defined = {n.strip() for names in re.findall(r"\blocal\s+(?:function\s+)?(\w[\w, ]*)", code)
               for n in names.split(",")}  # local functions, and locals (local fmt = ...)
    called = set(re.findall(r"(?<![\w.:])([A-Za-z_]\w*)\s*\(", code))
    builtins = {"tonumber", "tostring", "type", "unpack", "pairs", "ipairs", "select", "error",
                "pcall", "assert", "next", "function", "if", "and", "or", "not", "return",
                "elseif", "until", "while", "in", "local"}
    assert called - builtins <= defined, called - builtins - defined


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
