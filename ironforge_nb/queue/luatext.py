"""What `scripting.assemble` does to the Lua text of a script before Redis sees it, apart from
the constants (`scripting.expand`): small helpers written out where they are called, and the
helper definitions a script does not reach left out. Both keep every line where it was, so a
Lua error still names the right file and line (`scripting.Assembly.locate`).

Why: Redis runs the whole assembled text on every call, so each ``local function`` of common.lua
and of the helper files costs a closure per call whether the script calls it or not, and each
call of a helper a Lua call. Writing the shared idioms once in common.lua (now_ms, wait_score,
add_event, wake_workers) had made the one-job-at-a-time scripts cost more Redis time than when
each script spelled them out: enqueue_jobs +1.2 µs, claim_jobs +0.4, complete_job +0.5 (of
17-33 µs; benchmarks/bench_lua_calls.py --interleave). Written out here, they cost what the
hand-written code cost, or less (the unused definitions are gone too).

- `Template`: a call of a ONE-LINE helper, ``local function f(a, b, ...)`` whose body is
  ``return <expression>`` or one call statement, is replaced by that body with the arguments
  in place of the parameters (in parentheses unless plain names; ``...`` by the call's extra
  arguments). A call is left alone (the helper stays) where writing it out could change what
  the code means: an expression argument for a parameter the body reads twice or never, two
  expression arguments the body reads in another order, a statement helper used as an
  expression, fewer arguments than parameters, a body ending in a comment, a name the body
  reads declared again somewhere (`shadowed`).
- `Let`: the statement ``local x = f()`` of a helper of no parameters made of one local and a
  return (``now_ms``: Redis TIME, then whole ms) becomes that local's value and the return's,
  both assigned to ``x`` on that line.
- `Block`: a statement calling a helper of statements that returns nothing and calls no other
  helper (``wake_workers``) becomes ``do local <params> = <arguments> <body> end``.
- `used`: common.lua and the helper files keep only the top-level definitions the script
  reaches, directly or through a kept one; the others become blank lines.

An error in a helper written out is reported at the line that calls it, where its arguments
are. Not a Lua parser: it tells code from strings and comments, and top-level definitions by
their layout (``local`` at column 0; a function ends at the next ``end`` at column 0);
``tests/test_lua_prelude.py`` checks that every assembled script keeps its line count, that
every function it calls is defined in it, and that every script still compiles.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Template", "code_only", "inline", "shadowed", "templates", "used"]

_KEYWORDS = frozenset({"and", "break", "do", "else", "elseif", "end", "false", "for", "function",
                       "if", "in", "local", "nil", "not", "or", "repeat", "return", "then",
                       "true", "until", "while"})
_WORD = re.compile(r"[A-Za-z_]\w*")
_SIMPLE = re.compile(r"[A-Za-z_]\w*(?:\s*(?:\.\s*[A-Za-z_]\w*|\[\s*(?:\w+|'[^'\\]*')\s*\]))*"
                     r"|\d+(?:\.\d+)?|'[^'\\]*'")  # a name, a field of one, or a literal


def _skip_string(text: str, i: int) -> int:
    """The index just past the string literal starting at ``text[i]`` (a quote)."""
    quote, i = text[i], i + 1
    while i < len(text) and text[i] != quote:
        i += 2 if text[i] == "\\" else 1
    return i + 1


def _skip_comment(text: str, i: int) -> int:
    """The index just past the comment starting at ``text[i:i+2] == '--'`` (a line comment
    stops before its newline, a ``--[[ ]]`` / ``--[=[ ]=]`` block after its closing)."""
    block = re.match(r"--\[(=*)\[", text[i:i + 8])
    if block:
        end = text.find("]" + block.group(1) + "]", i)
        return len(text) if end < 0 else end + len(block.group(1)) + 2
    end = text.find("\n", i)
    return len(text) if end < 0 else end


_LEXEMES = re.compile(r"--\[(=*)\[.*?\]\1\]|--[^\n]*|'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"",
                      re.S)  # comments (block, line) and strings, leftmost first


def _blank(m: re.Match[str]) -> str:
    text = m.group(0)
    if text.startswith("--"):
        return re.sub(r"[^\n]", " ", text)
    return text[0] + " " * (len(text) - 2) + text[-1]


@functools.lru_cache(maxsize=4096)
def code_only(text: str) -> str:
    """``text`` with comments and string contents blanked (same length, newlines and quotes
    kept): what names the code uses, at the same offsets."""
    return _LEXEMES.sub(_blank, text)


@dataclass(frozen=True)
class Template:
    """A one-line helper that can be inlined: ``body`` uses ``params`` (and ``...`` last when
    ``vararg``); ``expression`` is True for ``return <expression>``, False for a call."""

    name: str
    params: tuple[str, ...]
    vararg: bool
    body: str
    expression: bool
    free: frozenset[str]  # the other names the body uses (globals, locals of its file)

    def uses(self, param: str) -> int:
        """How many times the body reads ``param``."""
        return sum(1 for m in _reads(code_only(self.body)) if m.group(0) == param)

    @property
    def in_order(self) -> bool:
        """Whether the body names its parameters first in their order (then the arguments
        are evaluated in the order a call evaluates them)."""
        names = [m.group(0) for m in _reads(code_only(self.body))]
        firsts = [names.index(p) for p in self.params if p in names]
        return firsts == sorted(firsts)


@dataclass(frozen=True)
class Let:
    """A helper of no parameters made of one local and a return, ``local v = <setup>`` then
    ``return <value>`` (now_ms: Redis TIME, then whole ms): the statement ``local x = f()``
    becomes ``local x = <setup> x = <value, v read as x>``, on its line."""

    name: str
    var: str
    setup: str
    value: str
    free: frozenset[str]


@dataclass(frozen=True)
class Block:
    """A helper of statements that returns nothing and calls no other helper (wake_workers): a
    call of it as a statement becomes ``do local <params> = <arguments> <body> end`` on the
    call's line (the arguments are evaluated once, in order, before the body, as a call
    does)."""

    name: str
    params: tuple[str, ...]
    body: str  # the statements on one line, comments removed
    free: frozenset[str]


_BLOCK = re.compile(r"^local function (\w+)\(([\w, ]*)\)\n((?:  .*\n)+)end$", re.M)
_LET = re.compile(r"^local function (\w+)\(\)\n  local (\w+) = (.+)\n  return (.+)\nend$", re.M)
_ONE_LINER = re.compile(r"^local function (\w+)\(([\w, .]*)\)\n  (.+)\nend$", re.M)
_NAME = re.compile(r"(?<![\w.:])[A-Za-z_]\w*")  # a name, not a field or method name
_CALL_BODY = re.compile(r"[\w.:]+\(.*\)")


def _reads(code: str) -> list[re.Match[str]]:
    """The names ``code`` reads: not keywords, fields, or the keys of a table constructor
    (``{stop = ...}``; the one-line bodies inlined have no assignments)."""
    return [n for n in _NAME.finditer(code)
            if n.group(0) not in _KEYWORDS and not re.match(r"\s*=(?!=)", code[n.end():])]


def _free(code: str, bound: Sequence[str]) -> frozenset[str]:
    """The names ``code`` reads that are not ``bound``."""
    return frozenset(n.group(0) for n in _reads(code) if n.group(0) not in bound)


def _has_comment(text: str) -> bool:
    return any(x.group(0).startswith("--") for x in _LEXEMES.finditer(text))


@functools.lru_cache(maxsize=64)
def templates(library: str) -> tuple[Template | Let | Block, ...]:
    """The helpers of ``library`` (common.lua and helper files, in assembly order) that may be
    inlined: the `Let` ones, the `Block` ones and the one-line ones (each body already inlined
    with the one-line ones before it)."""
    found: tuple[Template | Let | Block, ...] = tuple(
        Let(m.group(1), m.group(2), m.group(3), m.group(4),
            _free(code_only(m.group(3) + " " + m.group(4)), [m.group(2)]))
        for m in _LET.finditer(library)
        if not _has_comment(m.group(3) + m.group(4))
        and not re.search(r"\b(local|function)\b", code_only(m.group(3) + m.group(4))))
    functions = set(re.findall(r"^local function (\w+)", library, re.M))
    for m in _BLOCK.finditer(library):
        lines = m.group(3).split("\n")
        code = code_only(m.group(3))
        if len(lines) < 3 or re.search(r"\b(return|function)\b|\.\.\.", code) or \
                any(line.lstrip().startswith("(") for line in lines):
            continue  # one-liners are Templates; a return would leave the caller
        body = " ".join(line.strip() for line in
                        _LEXEMES.sub(lambda x: "" if x.group(0).startswith("--") else x.group(0),
                                     m.group(3)).split("\n") if line.strip())
        bound = tuple(q.strip() for q in m.group(2).split(",") if q.strip())
        own = tuple(_declared(body)[0])  # its locals and loop variables are its own
        free = _free(code_only(body), bound + own)
        if not free & functions:  # a leaf: small helpers only, whose body stays as written
            found += (Block(m.group(1), bound, body, free),)
    for m in _ONE_LINER.finditer(library):
        params = [p.strip() for p in m.group(2).split(",") if p.strip()]
        vararg = bool(params) and params[-1] == "..."
        if vararg:
            params.pop()
        body = m.group(3)
        code = code_only(body)
        if _has_comment(body) or re.search(r"\b(local|function)\b", code):
            continue  # a comment would hide what follows the call; a body of its own
        expression = body.startswith("return ")
        if expression:
            body = body[len("return "):]
            if _CALL_BODY.fullmatch(body):  # a call may return several values: keep it
                continue
        elif not _CALL_BODY.fullmatch(body):
            continue
        if vararg and not re.search(r",\s*\.\.\.\)$", body):
            continue  # `...` is passed on only as the last argument of the body's call
        body = inline(body, found)
        free = _free(code_only(body), params)
        found += (Template(m.group(1), tuple(params), vararg, body, expression, free),)
    return found


def _arguments(text: str, i: int) -> tuple[list[str], int] | None:
    """The arguments of the call whose ``(`` is at ``text[i]`` (comments removed, their
    newlines kept) and the index past its ``)``; None if the call is not closed."""
    pieces, depth, j = [], 0, i + 1
    piece = j
    while j < len(text):
        ch = text[j]
        if ch in "'\"":
            j = _skip_string(text, j)
            continue
        if text.startswith("--", j):
            pieces.append(text[piece:j])
            j = piece = _skip_comment(text, j)
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                pieces.append(text[piece:j])
                inside = "".join(pieces)
                return ([] if not inside.strip() else _split_top(inside)), j + 1
            depth -= 1
        j += 1
    return None


def _split_top(text: str) -> list[str]:
    """``text`` split at its commas outside brackets and strings."""
    parts, depth, last, j = [], 0, 0, 0
    while j < len(text):
        ch = text[j]
        if ch in "'\"":
            j = _skip_string(text, j)
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[last:j])
            last = j + 1
        j += 1
    parts.append(text[last:])
    return parts


def _at_statement(code: str, i: int) -> bool:
    """Whether a call starting at ``code[i]`` starts a statement (first on its line, or
    after ``then``, ``do``, ``else``)."""
    before = code[code.rfind("\n", 0, i) + 1:i]
    return not before.strip() or re.search(r"\b(then|do|else)\s*$", before) is not None


def _enclosed(expression: str) -> bool:
    """Whether ``expression`` is one parenthesized expression, ``(...)``, already."""
    if not expression.startswith("("):
        return False
    parsed = _arguments(expression, 0)
    return parsed is not None and parsed[1] == len(expression) and len(parsed[0]) == 1


def _block(t: Block, args: Sequence[str]) -> str | None:
    """``t`` as a ``do ... end`` block binding its parameters to ``args``."""
    if len(args) != len(t.params):
        return None
    bind = (f"local {', '.join(t.params)} = {', '.join(a.strip() for a in args)} "
            if t.params else "")
    return f"do {bind}{t.body} end"


def _put(t: Template, args: Sequence[str]) -> str | None:
    """``t``'s body with ``args`` in place of its parameters, or None where that could change
    what the code means."""
    if len(args) < len(t.params) or (len(args) > len(t.params) and not t.vararg):
        return None
    values, computed = {}, 0
    for param, arg in zip(t.params, args, strict=False):
        arg = arg.strip()
        simple = _SIMPLE.fullmatch(arg) is not None
        if not simple and t.uses(param) != 1:
            return None  # it would be evaluated twice, or not at all
        computed += not simple
        values[param] = arg if simple or _enclosed(arg) else f"({arg})"
    if computed > 1 and not t.in_order:
        return None  # the arguments would be evaluated in another order
    extra = ",".join(args[len(t.params):]).strip()
    code = code_only(t.body)
    out, last = [], 0
    for m in re.finditer(r"(?<![\w.:])[A-Za-z_]\w*|,\s*\.\.\.", code):
        word = m.group(0)
        if re.match(r"\s*=(?!=)", code[m.end():]):
            continue  # a table constructor's key, not a read of the parameter
        if word.endswith("..."):
            value = f", {extra}" if extra else ""  # no extra arguments: no ", ..." either
        elif word in values:
            value = values[word]
        else:
            continue
        out.append(t.body[last:m.start()] + value)
        last = m.end()
    out.append(t.body[last:])
    text = "".join(out)
    return f"({text})" if t.expression else text


@functools.lru_cache(maxsize=256)
def _declared(text: str) -> tuple[Counter[str], frozenset[str]]:
    """How many times each name is declared in one file's ``text`` (locals, function
    parameters, loop variables), and which of them at the top level."""
    code = code_only(text)
    names: Counter[str] = Counter()
    for pattern in (r"\blocal\s+function\s+(\w+)",  # a local function
                    r"\blocal[ \t]+(?!function\b)(\w[\w, \t]*)",  # locals
                    r"\bfunction\b[^(\n]*\(([^)]*)\)",  # parameters
                    r"\bfor[ \t]+(\w[\w, \t]*?)[ \t]*(?:=|\bin\b)"):  # loop variables
        for m in re.finditer(pattern, code):
            names.update(n for n in re.split(r"[\s,]+", m.group(1)) if n and n != "...")
    tops = frozenset(n for m in re.finditer(r"^local (?:function )?(\w[\w, ]*)", code, re.M)
                     for n in re.split(r"[\s,]+", m.group(1)) if n)
    return names, tops


def shadowed(texts: Sequence[str], found: Sequence[Template | Let | Block]) -> frozenset[str]:
    """The names the helpers of ``found`` use that the files ``texts`` (the assembled script)
    declare again somewhere: a helper using one is not inlined (its body would see another
    value)."""
    declared: Counter[str] = Counter()
    tops: set[str] = set()
    for text in texts:
        names, top = _declared(text)
        declared += names
        tops |= top
    free = set().union(*(t.free for t in found))
    return frozenset(n for n in free if declared[n] > (1 if n in tops else 0))


@functools.lru_cache(maxsize=16)
def _calls(names: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"(?<![\w.:])(" + "|".join(map(re.escape, names)) + r")\s*\(")


def _let(text: str, lets: dict[str, Let]) -> str:
    """``text`` with each ``local x = f()`` of a `Let` helper ``f`` written out."""
    code = code_only(text)
    pattern = re.compile(r"^([ \t]*local[ \t]+)(\w+)[ \t]*=[ \t]*(" +
                         "|".join(map(re.escape, lets)) + r")[ \t]*\([ \t]*\)(?=[ \t]*$)", re.M)
    out, last = [], 0
    for m in pattern.finditer(code):
        let, x = lets[m.group(3)], m.group(2)
        if x in let.free:
            continue
        value = "".join(x if part == let.var else part
                        for part in re.split(r"((?<![\w.:])[A-Za-z_]\w*)", let.value))
        out.append(f"{text[last:m.start()]}{m.group(1)}{x} = {let.setup} {x} = {value}")
        last = m.end()
    out.append(text[last:])
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def inline(text: str, found: tuple[Template | Let | Block, ...],
           hidden: frozenset[str] = frozenset()) -> str:
    """``text`` with each call of a helper of ``found`` replaced by the helper's body (see the
    module doc), on the same lines; ``hidden``: names declared again somewhere (`shadowed`),
    a helper using one stays a call."""
    lets = {t.name: t for t in found
            if isinstance(t, Let) and not t.free & hidden and t.name in text}
    if lets:
        text = _let(text, lets)
    usable = {t.name: t for t in found
              if isinstance(t, Template | Block) and not t.free & hidden and t.name in text}
    if not usable:
        return text
    call = _calls(tuple(usable))
    code = code_only(text)
    out, last = [], 0
    for m in call.finditer(code):
        if m.start() < last or re.search(r"\bfunction\s+$", code[:m.start()][-20:]):
            continue
        t = usable[m.group(1)]
        if (isinstance(t, Block) or not t.expression) and not _at_statement(code, m.start()):
            continue
        parsed = _arguments(text, m.end() - 1)
        if parsed is None:
            continue
        args, end = parsed
        args = [inline(a, found, hidden) for a in args]
        body = _block(t, args) if isinstance(t, Block) else _put(t, args)
        if body is None:
            continue
        lost = text.count("\n", m.start(), end) - body.count("\n")
        out.append(text[last:m.start()] + body + "\n" * lost)  # the call's lines stay lines
        last = end
    out.append(text[last:])
    return "".join(out)


@dataclass
class _Item:
    """A top-level definition: lines [first, end) of its file, the names it defines."""

    part: int
    first: int
    end: int
    names: set[str]
    words: set[str]


def _items(part: int, lines: list[str]) -> list[_Item]:
    """The top-level definitions of one file's ``lines``."""
    items, i = [], 0
    while i < len(lines):
        m = re.match(r"local (function )?([\w, ]+?)\s*(?:=|\(|$)", lines[i])
        if not m:
            i += 1
            continue
        names = {n.strip() for n in m.group(2).split(",")}
        j = i + 1
        if m.group(1) and not re.search(r"\bend\s*$", lines[i]):
            while j < len(lines) and not re.match(r"end\b", lines[j]):
                j += 1
            j += 1
        else:
            while j < len(lines) and (lines[j].startswith((" ", "}", ")")) or
                                      (lines[j] == "" and j + 1 < len(lines) and
                                       lines[j + 1].startswith(" "))):
                j += 1
        body = code_only("\n".join(lines[i:j]))
        items.append(_Item(part, i, j, names, set(_WORD.findall(body)) - names))
        i = j
    return items


def used(library: Sequence[str], script: str) -> list[str]:
    """The texts of ``library`` (common.lua, the helper files) keeping only the top-level
    definitions ``script`` reaches, directly or through kept ones; the others blank lines."""
    split = [text.split("\n") for text in library]
    items = [item for part, lines in enumerate(split) for item in _items(part, lines)]
    wanted = set(_WORD.findall(code_only(script)))
    covered = {(item.part, n) for item in items for n in range(item.first, item.end)}
    for part, lines in enumerate(split):  # top-level code outside definitions: kept, as is
        wanted |= set(_WORD.findall(code_only("\n".join(
            line for n, line in enumerate(lines) if (part, n) not in covered))))
    kept: set[int] = set()
    changed = True
    while changed:
        changed = False
        for k, item in enumerate(items):
            if k not in kept and item.names & wanted:
                kept.add(k)
                wanted |= item.words
                changed = True
    for k, item in enumerate(items):
        if k not in kept:
            lines = split[item.part]
            lines[item.first:item.end] = [""] * (item.end - item.first)
    return ["\n".join(lines) for lines in split]
