# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""goose v3 SQL migration parser: the same statements, byte for byte, and the same rejected files.

This follows goose v3.27 ``internal/sqlparser/parser.go`` line by line (its
state machine and its quirks) and ``github.com/mfridman/interpolate`` v0.0.2
for ``ENVSUB ON`` blocks (``envsub.py``). goose parses a file twice, once per direction, and
rejects it when either pass fails; so do we (the Up pass first). goose's own
messages carry no line number; ours are ``<source>:<line>: <cause>``.

Quirks reproduced on purpose:

* a statement ends at a line whose last whitespace-separated word before the
  first word starting with ``--`` ends with ``;``; quotes are not understood,
  so ``'a;`` at a line end splits a string, ``'arrow -->';`` hides its ``;``
  (fixed in goose after v3.27, #699) and ``SELECT 1;--x`` does not end;
* comment lines and empty lines before a statement are dropped, also inside
  a StatementBegin block; once a statement has started every line (comments
  too) is kept; a whitespace-only line starts a statement;
* a statement is its lines joined with ``\\n`` (one CR of CRLF dropped) and
  trimmed of surrounding whitespace (Go's ``strings.TrimSpace``);
* an annotation is a line whose trimmed text starts with ``--`` and that
  contains ``+goose`` (case-sensitive) anywhere, even inside a statement;
  its name is compared case-insensitively; leading space/tab, two ``+goose``,
  a trailing comment or an unknown name make the file invalid;
  ``NO TRANSACTION`` and ``ENVSUB`` may stand anywhere, even before Up;
* an empty StatementBegin/StatementEnd block swallows the next SQL line and
  yields an empty statement;
* ``ENVSUB ON`` expands each line as it joins a statement: ``$V``, ``${V}``,
  ``${V:-d}``, ``${V-d}``, ``${V?msg}``, ``${V:off[:len]}``; ``\\$`` and
  ``$$`` give ``$`` (so dollar quotes break inside ENVSUB), ``\\\\`` stays,
  ``$(`` stays, ``$`` before a non-letter (``$1``) is an error;
* a line of 4 MiB or more is refused (goose's ``bufio.Scanner`` limit).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .._compat import zip_strict
from ..errors import InvalidInput
from .envsub import GO_SPACE, go_trim_space, interpolate

# goose's scanBufSize: bufio.Scanner fails with "token too long" on a longer line.
MAX_LINE_BYTES = 4 * 1024 * 1024

_START, _UP, _BEGIN_UP, _END_UP, _DOWN, _BEGIN_DOWN, _END_DOWN = range(7)
_UP_STATES = (_UP, _BEGIN_UP, _END_UP)
_DOWN_STATES = (_DOWN, _BEGIN_DOWN, _END_DOWN)

_ANNOTATIONS = ("Up", "Down", "StatementBegin", "StatementEnd", "NO TRANSACTION", "ENVSUB ON", "ENVSUB OFF")
_GOOSE_DOCS = "see https://github.com/pressly/goose#sql-migrations"


@dataclass(frozen=True)
class ParsedSQL:
    """A goose SQL migration split into the statements goose would send."""

    up: tuple[str, ...]
    down: tuple[str, ...]
    use_tx: bool


class _ParseError(Exception):
    def __init__(self, line: int, cause: str):
        super().__init__(cause)
        self.line = line
        self.cause = cause


def split_lines(text: str) -> list[str]:
    """Lines as Go's ``bufio.Scanner`` with ``ScanLines`` yields them (one trailing CR dropped, no empty last line)."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def ends_with_semicolon(line: str) -> bool:
    """goose's ``endsWithSemicolon``: the last word before the first word starting with ``--`` ends with ``;``."""
    previous = ""
    for word in _go_words(line):
        if word.startswith("--"):
            break
        previous = word
    return previous.endswith(";")


def _go_words(line: str) -> list[str]:
    words, current = [], []
    for char in line:
        if char in GO_SPACE:
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(char)
    if current:
        words.append("".join(current))
    return words


def _equal_fold(left: str, right: str) -> bool:
    """Go's ``strings.EqualFold`` (simple, rune by rune case folding)."""
    if len(left) != len(right):
        return False
    return all(a == b or a.casefold() == b.casefold() for a, b in zip_strict(left, right))


def extract_annotation(line: str) -> str:
    """goose's ``extractAnnotation``: the canonical name of a ``-- +goose`` line; ValueError says why it is invalid."""
    if line.startswith((" ", "\t")):
        raise ValueError("annotation line starts with whitespace; goose annotations must start at column 1")
    command = line.replace("--", "").replace("+goose", "", 1)
    if "+goose" in command:
        raise ValueError("line holds more than one '+goose' annotation")
    command = go_trim_space(command)
    if not command:
        raise ValueError("empty '-- +goose' annotation")
    for name in _ANNOTATIONS:
        if _equal_fold(name, command):
            return name
    raise ValueError(f"unknown annotation '{command}' (supported: {', '.join(_ANNOTATIONS)})")


# --- the state machine -------------------------------------------------------------------------------------


def _parse_direction(lines: list[str], up: bool, env: Mapping[str, str]) -> tuple[list[str], bool]:
    state = _START
    use_tx = True
    use_envsub = False
    statements: list[str] = []
    buffer: list[str] = []
    buffer_has_text = False  # Go's TrimSpace(buf) != ""
    buffer_start = 0  # first non-blank line of the statement in the buffer, for messages
    block_start = 0  # line of the open StatementBegin

    def unfinished(where: str) -> _ParseError:
        text = go_trim_space("".join(buffer))
        snippet = text if len(text) <= 200 else text[:200] + "..."
        return _ParseError(
            buffer_start,
            f"unfinished SQL statement {where}, missing semicolon? (goose: unexpected unfinished SQL query): {snippet!r}",
        )

    for number, line in enumerate(lines, start=1):
        if len(line.encode("utf-8", errors="surrogatepass")) >= MAX_LINE_BYTES:
            raise _ParseError(number, "line is 4 MiB or longer, beyond goose's scanner limit (token too long)")
        if state == _START and go_trim_space(line) == "":
            continue
        if go_trim_space(line).startswith("--") and "+goose" in line:
            try:
                annotation = extract_annotation(line)
            except ValueError as exc:
                raise _ParseError(number, f"invalid annotation {line!r}: {exc}") from None
            if annotation == "Up":
                if state != _START:
                    raise _ParseError(number, f"duplicate '-- +goose Up' annotation; {_GOOSE_DOCS}")
                state = _UP
                continue
            if annotation == "Down":
                if state in (_UP, _END_UP):
                    if buffer_has_text:
                        raise unfinished(f"before '-- +goose Down' at line {number}")
                    state = _DOWN
                    continue
                if state == _START:
                    cause = "'-- +goose Down' before '-- +goose Up': the file must start with '-- +goose Up'"
                elif state in (_BEGIN_UP, _BEGIN_DOWN):
                    cause = f"'-- +goose Down' inside the StatementBegin block opened at line {block_start}"
                else:
                    cause = "duplicate '-- +goose Down' annotation"
                raise _ParseError(number, f"{cause}; {_GOOSE_DOCS}")
            if annotation == "StatementBegin":
                if state in (_UP, _END_UP):
                    state = _BEGIN_UP
                elif state in (_DOWN, _END_DOWN):
                    state = _BEGIN_DOWN
                elif state == _START:
                    raise _ParseError(number, f"'-- +goose StatementBegin' before '-- +goose Up'; {_GOOSE_DOCS}")
                else:
                    raise _ParseError(
                        number,
                        f"'-- +goose StatementBegin' inside the block opened at line {block_start} "
                        f"(missing '-- +goose StatementEnd'); {_GOOSE_DOCS}",
                    )
                block_start = number
                continue
            if annotation == "StatementEnd":
                if state == _BEGIN_UP:
                    state = _END_UP
                elif state == _BEGIN_DOWN:
                    state = _END_DOWN
                else:
                    raise _ParseError(
                        number, f"'-- +goose StatementEnd' without a matching '-- +goose StatementBegin'; {_GOOSE_DOCS}"
                    )
                # No "continue": as in goose, the line goes on through the checks below.
            elif annotation == "NO TRANSACTION":
                use_tx = False
                continue
            elif annotation == "ENVSUB ON":
                use_envsub = True
                continue
            elif annotation == "ENVSUB OFF":
                use_envsub = False
                continue
        # Comments and empty lines before a statement are dropped; inside one they are kept.
        if not buffer and (go_trim_space(line).startswith("--") or line == ""):
            continue
        if state not in (_END_UP, _END_DOWN):
            if use_envsub:
                try:
                    line = interpolate(line, env)
                except ValueError as exc:
                    raise _ParseError(number, f"variable substitution failed: {exc}") from None
            if not buffer_has_text and go_trim_space(line):
                buffer_has_text, buffer_start = True, number
            buffer.append(line + "\n")
        if state in _UP_STATES or state in _DOWN_STATES:
            if up != (state in _UP_STATES):  # the other direction's lines are dropped
                buffer, buffer_has_text = [], False
                continue
        else:
            raise _ParseError(
                number,
                f"SQL before the '-- +goose Up' annotation: {line!r}; the file must start with '-- +goose Up'; {_GOOSE_DOCS}",
            )
        if state in (_UP, _DOWN):
            if ends_with_semicolon(line):
                statements.append(go_trim_space("".join(buffer)))
                buffer, buffer_has_text = [], False
        elif state in (_END_UP, _END_DOWN):  # a _BEGIN_* state only accumulates
            statements.append(go_trim_space("".join(buffer)))
            buffer, buffer_has_text = [], False
            state = _UP if state == _END_UP else _DOWN

    last = len(lines)
    if state == _START:
        raise _ParseError(max(last, 1), f"no '-- +goose Up' annotation: the file must start with it; {_GOOSE_DOCS}")
    if state in (_BEGIN_UP, _BEGIN_DOWN):
        raise _ParseError(
            block_start,
            "missing '-- +goose StatementEnd' for this '-- +goose StatementBegin' before the end of the file",
        )
    if buffer_has_text:
        raise unfinished("at the end of the file")
    return statements, use_tx


def parse_sql(text: str, env: Mapping[str, str] | None = None, source: str = "<string>") -> ParsedSQL:
    """Split a goose SQL migration into its Up and Down statements.

    ``env`` is the whole mapping used by ``ENVSUB ON`` blocks (the caller merges
    ``os.environ`` and the module's ``env``); None means no variable is set.
    Raises InvalidInput("<source>:<line>: <cause>") for every file goose rejects.
    """
    env = {} if env is None else env
    lines = split_lines(text)
    try:
        up, use_tx = _parse_direction(lines, True, env)
        down = _parse_direction(lines, False, env)[0]
    except _ParseError as exc:
        raise InvalidInput(f"{source}:{exc.line}: {exc.cause}") from None
    return ParsedSQL(up=tuple(up), down=tuple(down), use_tx=use_tx)


def parse_sql_file(path: str, env: Mapping[str, str] | None = None) -> ParsedSQL:
    """Read and parse one ``.sql`` migration; the file name is the source of messages.

    The file must be UTF-8. A byte order mark is kept, so such a file fails as in goose.
    """
    name = os.path.basename(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise InvalidInput(f"cannot read migration file {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInput(f"{name}:{line}: the file is not valid UTF-8") from None
    return parse_sql(text, env=env, source=name)
