# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""goose's ``ENVSUB ON``: github.com/mfridman/interpolate v0.0.2 (a fork of buildkite/interpolate).

Each line of an ``ENVSUB ON`` block is expanded as it joins a statement:
``$V``, ``${V}``, ``${V:-d}``, ``${V-d}``, ``${V?msg}``, ``${V:off[:len]}``;
``\\$`` and ``$$`` give ``$``, ``\\\\`` stays, ``$(`` stays, and ``$``
before a non-letter is an error, with interpolate's messages.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

# Go's unicode.IsSpace / bufio.isSpace: what strings.TrimSpace trims and bufio.ScanWords splits on.
GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200B)) + "\u2028\u2029\u202f\u205f\u3000"
)


def go_trim_space(text: str) -> str:
    """Go's ``strings.TrimSpace``."""
    return text.strip(GO_SPACE)


class _Interpolator:
    """Recursive-descent parser and expander with mfridman/interpolate's grammar and errors."""

    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        char = self.peek()
        if char:
            self.pos += 1
        return char

    def scan_until(self, stop) -> str:
        start = self.pos
        # interpolate's scanUntil also stops on utf8.RuneError, i.e. U+FFFD.
        while self.pos < len(self.text) and self.text[self.pos] != "\ufffd" and not stop(self.text[self.pos]):
            self.pos += 1
        return self.text[start : self.pos]

    def parse_expression(self, stop: str = "") -> list:
        items: list = []
        while True:
            char = self.peek()
            if not char or char in stop:
                return items
            rest = self.text[self.pos : self.pos + 2]
            if rest == "\\\\":
                self.pos += 2
                items.append("\\\\")  # an escaped backslash stays two backslashes
            elif rest in ("\\$", "$$"):
                self.pos += 2
                items.append("$")
            elif rest == "$(":
                self.pos += 2
                items.append("$(")
            elif char == "$" and self.pos < len(self.text) - 1:
                items.append(self.parse_expansion())
            else:
                first = self.next()
                items.append(first + self.scan_until(lambda r: r in "$\\" or r in stop))

    def scan_identifier(self) -> str:
        char = self.peek()
        if not (char and unicodedata.category(char).startswith("L")):
            raise ValueError(f"Expected identifier to start with a letter, got {char or 'end of line'}")
        return self.scan_until(lambda r: not (unicodedata.category(r)[0] in "LN" or r == "_"))

    def parse_expansion(self) -> tuple:
        self.next()  # "$"
        if self.peek() == "{":
            return self.parse_brace_expansion()
        return ("var", self.scan_identifier())

    def parse_brace_expansion(self) -> tuple:
        self.next()  # "{"
        name = self.scan_identifier()
        if self.peek() == "}":
            self.next()
            return ("var", name)
        operator = self.next()
        if operator == ":" and self.peek() == "-":
            self.next()
            operator = ":-"
        elif operator not in (":", "?", "-"):
            raise ValueError(f"Expected an operator, got {operator or 'end of line'}")
        expansion = self.parse_substring(name) if operator == ":" else (operator, name, self.parse_expression("}"))
        closing = self.next()
        if closing != "}":
            raise ValueError(f"Expected brace expansion to end with }}, got {closing or 'end of line'}")
        return expansion

    def parse_substring(self, name: str) -> tuple:
        offset = _go_atoi(self.scan_until(lambda r: r in ":}"), "offset")
        if self.peek() == "}":
            return ("substr", name, offset, None)
        self.next()
        length = _go_atoi(self.scan_until(lambda r: r == "}"), "length")
        return ("substr", name, offset, length)


def _go_atoi(text: str, what: str) -> int:
    digits = go_trim_space(text)
    body = digits[1:] if digits[:1] in ("+", "-") else digits
    if not body or not all("0" <= c <= "9" for c in body):
        raise ValueError(f'Unable to parse {what}: strconv.Atoi: parsing "{digits}": invalid syntax')
    return int(digits)


def _expand(items: list, env: Mapping[str, str]) -> str:
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
            continue
        kind, name = item[0], item[1]
        if kind == "var":
            out.append(env.get(name, ""))
        elif kind == ":-":
            value = env.get(name, "")
            out.append(value if value != "" else _expand(item[2], env))
        elif kind == "-":
            out.append(env[name] if name in env else _expand(item[2], env))
        elif kind == "?":
            if name not in env:
                message = _expand(item[2], env) or "not set"
                raise ValueError(f"${name}: {message}")
            out.append(env[name])
        else:  # substring, on UTF-8 bytes as Go slices strings
            out.append(_substring(env.get(name, ""), item[2], item[3]))
    return "".join(out)


def _substring(value: str, offset: int, length: int | None) -> str:
    data = value.encode("utf-8")
    start = offset + len(data) if offset < 0 else offset
    start = min(max(start, 0), len(data))
    if length is None:
        end = len(data)
    elif length >= 0:
        end = start + length
    else:
        end = max(length + len(data), start)
    end = min(end, len(data))
    return data[start:end].decode("utf-8", errors="replace")


def interpolate(line: str, env: Mapping[str, str]) -> str:
    """Expand one line as goose's ENVSUB does; ValueError carries interpolate's message."""
    return _expand(_Interpolator(line).parse_expression(), env)
