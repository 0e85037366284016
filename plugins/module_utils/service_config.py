# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Edit the top-level ``storage:`` block of a Lamassu service's own config file, line by line.

Lamassu reads one YAML file per service (``/etc/lamassuiot/config.yml`` or ``$LAMASSU_CONFIG_FILE``) and decodes
its flat ``storage:`` block (``provider``, ``hostname``, ``port``, ``username``, ``password``). The cutover changes
only the keys it is given (the database; the host, port and login role only when the operator names new ones) and
leaves every other line as it was: other keys, comments, quoting, indentation, line endings, and the password,
which it never writes. ruamel is not available on managed hosts, so the edit is done
on lines and then proved: the edited text must parse (PyYAML) to the original document with only those keys
changed, or nothing is written.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import InvalidInput, OperationFailed

try:
    import yaml
except ImportError:
    HAS_YAML = False
    YAML_IMPORT_ERROR: str | None = traceback.format_exc()
    yaml = None
else:
    HAS_YAML = True
    YAML_IMPORT_ERROR = None

STORAGE = "storage"
PROVIDER = "postgres"
# The plan's name of the unified-database setting; no Lamassu release reads a database name from its config yet.
DEFAULT_DATABASE_KEY = "database"
DEFAULT_BACKUP_SUFFIX = ".pre-lamassu"
SECRET_KEYS = frozenset({"password"})
HIDDEN = "********"

_KEY_LINE = re.compile(
    r"""^(?P<indent> *)(?P<key>"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"{\[\-?][^#]*?|-[^\s#][^#]*?)[ \t]*:(?P<rest>[ \t].*|)$"""
)
# Plain only what reads as the same string in YAML 1.1 (PyYAML) and 1.2 (the Go services): no leading digit.
_PLAIN_SAFE = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./@+%=-]*$")


def storage_settings(
    *,
    database: str | None = None,
    hostname: str | None = None,
    port: int | None = None,
    username: str | None = None,
    database_key: str = DEFAULT_DATABASE_KEY,
) -> dict[str, object]:
    """The keys the cutover writes, in the order new ones are added: ``provider`` and each setting given (None:
    not given, the service keeps its own). Never the password.

    The move changes the database; the host, the port and the login role of a service stay what they are unless
    the operator names new ones, since the service keeps its own password line and a new user without it cannot
    log in."""
    given = {"hostname": hostname, "port": port, "username": username, database_key: database}
    if database_key in SECRET_KEYS or database_key in {"provider", "hostname", "port", "username"}:
        raise InvalidInput(f"database_key {database_key!r} names another storage setting")
    if all(value is None for value in given.values()):
        raise InvalidInput(
            f"no storage setting to write: give at least one of {database_key}, hostname, port, username"
        )
    for name, what in (
        ("hostname", "name the host the services use to reach PostgreSQL"),
        ("username", "name the login role of the services"),
        (database_key, "name the unified database"),
    ):
        if given[name] is not None and not given[name]:
            raise InvalidInput(f"{name} is empty: {what}, or leave it out")
    if port is not None and not 0 < port < 65536:
        raise InvalidInput(f"port {port} is not a TCP port")
    return {"provider": PROVIDER, **{key: value for key, value in given.items() if value is not None}}


@dataclass(frozen=True)
class Line:
    body: str
    end: str  # the line's own ending ("\n", "\r\n" or "" for a last line without one)

    @property
    def indent(self) -> int:
        return len(self.body) - len(self.body.lstrip(" "))

    @property
    def is_content(self) -> bool:
        stripped = self.body.strip()
        return bool(stripped) and not stripped.startswith("#")


@dataclass(frozen=True)
class Edit:
    """The text before and after, and which storage keys changed (added or given a new value)."""

    before: str
    after: str
    changed_keys: tuple[str, ...] = ()
    storage_before: str = ""
    storage_after: str = ""
    settings: dict = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _split(text: str) -> list[Line]:
    # Only "\n" ends a line in YAML; str.splitlines would also split at U+2028 and other separators inside values.
    lines = []
    for raw in re.findall(r"[^\n]*\n|[^\n]+$", text):
        body = raw[:-2] if raw.endswith("\r\n") else raw.rstrip("\n")
        lines.append(Line(body, raw[len(body) :]))
    return lines


def _unquote_key(key: str) -> str:
    if key.startswith('"'):
        try:
            return json.loads(key)
        except ValueError:  # a YAML-only escape (\x41, \e): not a key this editor looks for
            return key[1:-1]
    if key.startswith("'"):
        return key[1:-1].replace("''", "'")
    return key


def _key_of(line: Line) -> tuple[str, str] | None:
    """``(key, rest after the colon)`` of a ``key: value`` line, else None."""
    match = _KEY_LINE.match(line.body)
    if not match:
        return None
    return _unquote_key(match.group("key").strip()), match.group("rest")


def _split_value(rest: str) -> tuple[str, str]:
    """The value text of ``rest`` (what follows the colon) and its trailing comment with the spaces before it."""
    text = rest.strip()
    if text and text[0] in "\"'":
        quote, i = text[0], 1
        while i < len(text):
            if quote == '"' and text[i] == "\\":
                i += 2
                continue
            if text[i] == quote:
                if quote == "'" and text[i + 1 : i + 2] == "'":
                    i += 2
                    continue
                break
            i += 1
        value_end = i + 1
    else:
        found = re.search(r"(?:^|[ \t])#", text)
        value_end = found.start() if found else len(text)
    value = text[:value_end].rstrip()
    tail = text[value_end:]
    comment = re.search(r"[ \t]*#.*$", tail)
    return value, comment.group(0) if comment else ""


def _is_plain_string(value: str) -> bool:
    if not _PLAIN_SAFE.match(value):
        return False
    return yaml.safe_load(value) == value


def _double_quoted(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def format_scalar(value: object, like: str = "") -> str:
    """``value`` as a YAML scalar, in the quoting style of ``like`` (the value text it replaces) when it can."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidInput(f"cannot write {value!r} into a storage setting: only strings and integers")
    if isinstance(value, int):
        return str(value)
    if like.startswith('"'):
        return _double_quoted(value)
    printable = value.isprintable() and value == value.strip()
    if like.startswith("'") and printable:
        return "'" + value.replace("'", "''") + "'"
    return value if printable and _is_plain_string(value) else _double_quoted(value)


def _same(old: object, new: object) -> bool:
    # The storage block is decoded without weak typing: port "5432" is not port 5432 to Lamassu.
    return type(old) is type(new) and old == new


def _load(text: str, what: str) -> object:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{what} is not valid YAML: {exc}") from None


def _top_indent(lines: list[Line]) -> int:
    for line in lines:
        stripped = line.body.strip()
        if line.is_content and not stripped.startswith(("---", "%")):
            return line.indent
    return 0


def _block_end(lines: list[Line], start: int, indent: int) -> int:
    """Index after the last content line deeper than ``indent`` from ``start``, before one that is not."""
    end = start
    for i in range(start, len(lines)):
        if not lines[i].is_content:
            continue
        if lines[i].indent <= indent:
            break
        end = i + 1
    return end


def _mask(lines: list[Line], child_indent: int | None) -> str:
    """The block's text with the values of secret keys hidden (for diffs and messages)."""
    out = []
    for line in lines:
        body = line.body
        parsed = _key_of(line)
        if parsed and parsed[0] in SECRET_KEYS and (child_indent is None or line.indent == child_indent):
            value, comment = _split_value(parsed[1])
            if value:
                body = f"{body[: len(body) - len(parsed[1])]} {HIDDEN}{comment}"
        out.append(body + "\n")
    return "".join(out)


def _kind(value: object) -> str:
    names = {list: "sequence", str: "string", int: "number", float: "number", bool: "boolean"}
    return names.get(type(value), type(value).__name__)


def _check_document(doc: object) -> dict:
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise InvalidInput(f"the file holds a YAML {_kind(doc)}, not a mapping of settings")
    storage = doc.get(STORAGE)
    if storage is not None and not isinstance(storage, dict):
        raise InvalidInput(
            f"its {STORAGE!r} setting is a {_kind(storage)} ({storage!r:.40}), not a mapping: "
            "Lamassu reads provider, hostname, port, username and password from a mapping; fix the file by hand"
        )
    return doc


def edit_storage(text: str, settings: Mapping[str, object]) -> Edit:
    """``text`` with the top-level ``storage:`` block holding ``settings``; every other line unchanged.

    Raises InvalidInput, naming the cause, when the file is not a YAML mapping, when ``storage`` is not a mapping
    written as a block, or when the edited text would not parse back to the same document with only those keys
    changed.
    """
    doc = _check_document(_load(text, "the file"))
    current = doc.get(STORAGE) or {}
    wanted = {key: value for key, value in settings.items() if not (key in current and _same(current[key], value))}
    lines = _split(text)
    newline = "\r\n" if "\r\n" in text else "\n"
    top = _top_indent(lines)
    starts = [i for i, line in enumerate(lines) if line.indent == top and (_key_of(line) or ("", ""))[0] == STORAGE]
    if len(starts) > 1:
        raise InvalidInput(
            f"{STORAGE!r} is set {len(starts)} times at the top level (lines {', '.join(str(i + 1) for i in starts)})"
        )
    if STORAGE in doc and not starts:
        raise InvalidInput(f"{STORAGE!r} is not written as a top-level 'storage:' line (a merge key or an alias?)")

    if not starts:
        return _append_block(text, doc, lines, settings, top, newline)

    start = starts[0]
    head_value = _split_value(_key_of(lines[start])[1])[0]
    if head_value and not re.fullmatch(r"&\S+", head_value):
        raise InvalidInput(
            f"{STORAGE!r} is written on one line ({head_value!r:.40}, line {start + 1}); write it as a block of "
            "'key: value' lines under 'storage:' and run again"
        )
    end = _block_end(lines, start + 1, top)
    block = lines[start + 1 : end]
    content = [line for line in block if line.is_content]
    child = content[0].indent if content else top + _indent_unit(lines, top)
    before_block = _mask(lines[start:end], child)
    if not wanted:
        return Edit(text, text, storage_before=before_block, storage_after=before_block, settings=dict(settings))

    new_block: list[Line] = []
    done: set[str] = set()
    i = 0
    while i < len(block):
        line = block[i]
        parsed = _key_of(line) if line.is_content and line.indent == child else None
        if parsed and parsed[0] in wanted:
            key, rest = parsed
            value, comment = _split_value(rest)
            head = line.body[: len(line.body) - len(rest)]
            new_block.append(Line(f"{head} {format_scalar(wanted[key], value)}{comment}", line.end or newline))
            done.add(key)
            # Deeper lines after a key are its old value (a block scalar, a continuation): replaced with it.
            i = _block_end(block, i + 1, child)
            continue
        new_block.append(line)
        i += 1

    missing = [key for key in wanted if key not in done]
    if missing:
        last = max((j for j, line in enumerate(new_block) if line.is_content), default=-1) + 1
        if last > 0 and not new_block[last - 1].end:
            new_block[last - 1] = Line(new_block[last - 1].body, newline)
        new_block[last:last] = [Line(f"{' ' * child}{key}: {format_scalar(wanted[key])}", newline) for key in missing]
    head_line = lines[start] if lines[start].end or not new_block else Line(lines[start].body, newline)
    after_lines = [*lines[:start], head_line, *new_block, *lines[end:]]
    after = "".join(line.body + line.end for line in after_lines)
    edit = Edit(
        text,
        after,
        tuple(wanted),
        storage_before=before_block,
        storage_after=_mask([head_line, *new_block], child),
        settings=dict(settings),
    )
    _verify(edit, doc, current, wanted)
    return edit


def _indent_unit(lines: list[Line], top: int) -> int:
    deeper = [line.indent - top for line in lines if line.is_content and line.indent > top]
    return min(deeper) if deeper else 2


def _append_block(
    text: str, doc: dict, lines: list[Line], settings: Mapping[str, object], top: int, newline: str
) -> Edit:
    wanted = dict(settings)
    unit = _indent_unit(lines, top)
    block = [Line(" " * top + f"{STORAGE}:", newline)]
    block += [Line(f"{' ' * (top + unit)}{key}: {format_scalar(value)}", newline) for key, value in wanted.items()]
    kept = list(lines)
    if kept and not kept[-1].end:
        kept[-1] = Line(kept[-1].body, newline)
    # A document end marker ("...") stays the last line.
    content = [i for i, line in enumerate(kept) if line.is_content]
    at = content[-1] if content and kept[content[-1]].body.strip() == "..." else len(kept)
    kept, tail = kept[:at], kept[at:]
    after = "".join(line.body + line.end for line in [*kept, *block, *tail])
    edit = Edit(
        text,
        after,
        tuple(wanted),
        storage_before="",
        storage_after=_mask(block, top + unit),
        settings=dict(settings),
    )
    _verify(edit, doc, {}, wanted)
    return edit


def _verify(edit: Edit, doc: dict, current: dict, wanted: dict) -> None:
    expected = dict(doc)
    expected[STORAGE] = {**current, **wanted}
    try:
        got = yaml.safe_load(edit.after)
    except yaml.YAMLError as exc:
        got = exc
    if got != expected:
        raise InvalidInput(
            f"could not edit the {STORAGE!r} block safely (the edited file would not read back as the original "
            "with only the storage settings changed); nothing was written. Set these keys by hand: "
            + ", ".join(f"{key}: {format_scalar(value)}" for key, value in wanted.items())
        )


def storage_block(text: str) -> str:
    """The top-level ``storage:`` block of ``text`` (secrets hidden), or "" (for diffs of a restore)."""
    lines = _split(text)
    top = _top_indent(lines)
    for start, line in enumerate(lines):
        if line.indent == top and (_key_of(line) or ("", ""))[0] == STORAGE:
            end = _block_end(lines, start + 1, top)
            return _mask(lines[start:end], None)
    return ""


# --- files -----------------------------------------------------------------------------------------------------


def _read(path: str) -> tuple[bytes, os.stat_result]:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        return data, os.stat(path)
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file (the service's own config file must exist)") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path} is a directory, not a config file") from None
    except PermissionError as exc:
        raise InvalidInput(f"{path}: cannot read it ({exc.strerror})") from None


def _decode(data: bytes, path: str) -> tuple[str, bytes]:
    bom = b"\xef\xbb\xbf" if data.startswith(b"\xef\xbb\xbf") else b""
    try:
        return data[len(bom) :].decode("utf-8"), bom
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def write_like(path: str, data: bytes, like: os.stat_result) -> None:
    """Replace ``path`` atomically with ``data``, with the mode and owner of ``like``."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, like.st_mode & 0o7777)
        if (like.st_uid, like.st_gid) != (os.getuid(), os.getgid()):
            try:
                os.chown(temporary, like.st_uid, like.st_gid)
            except PermissionError as exc:
                raise InvalidInput(
                    f"{path}: cannot keep its owner {like.st_uid}:{like.st_gid} ({exc.strerror}); run with become"
                ) from None
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _diff(path: str, before: str, after: str) -> dict:
    return {"before": before, "after": after, "before_header": f"{path} (storage)", "after_header": f"{path} (storage)"}


def ensure_storage(path: str, settings: Mapping[str, object], backup_suffix: str, check_mode: bool) -> dict:
    """Point the file's ``storage:`` block at ``settings``; keep the file as it was in ``<path><backup_suffix>``
    before its first change (an existing backup is the file of before the first cutover and stays)."""
    if not backup_suffix:
        raise InvalidInput("backup_suffix is empty: the backup would be the file itself")
    data, stat = _read(path)
    text, bom = _decode(data, path)
    try:
        edit = edit_storage(text, settings)
    except InvalidInput as exc:
        raise InvalidInput(f"{path}: {exc}") from None
    backup = path + backup_suffix
    backup_exists = os.path.lexists(backup)
    result = {
        "changed": edit.changed,
        "path": path,
        "backup": backup if backup_exists or edit.changed else None,
        "backup_created": edit.changed and not backup_exists,
        "changed_keys": list(edit.changed_keys),
        "storage": {key: value for key, value in edit.settings.items() if key not in SECRET_KEYS},
        "diff": _diff(path, edit.storage_before, edit.storage_after),
    }
    if edit.changed and not check_mode:
        try:
            if not backup_exists:
                write_like(backup, data, stat)
            write_like(path, bom + edit.after.encode("utf-8"), stat)
        except OSError as exc:
            raise OperationFailed(f"{path}: cannot write it ({exc.strerror}); the file is unchanged") from None
    return result


def restore(path: str, backup_suffix: str, check_mode: bool) -> dict:
    """Put back ``<path><backup_suffix>`` as ``path`` (its bytes, mode and owner) and remove it; nothing to do
    without a backup."""
    if not backup_suffix:
        raise InvalidInput("backup_suffix is empty: the backup would be the file itself")
    backup = path + backup_suffix
    result = {"changed": False, "path": path, "backup": None, "restored": False}
    if not os.path.lexists(backup):
        return result
    data, stat = _read(backup)
    try:
        current = _read(path)[0]
    except InvalidInput:
        current = b""
    before = storage_block(_decode(current, path)[0]) if current else ""
    after = storage_block(_decode(data, backup)[0])
    result.update(changed=True, backup=backup, restored=current != data, diff=_diff(path, before, after))
    if not check_mode:
        try:
            write_like(path, data, stat)
            os.unlink(backup)
        except OSError as exc:
            raise OperationFailed(f"{path}: cannot restore it from {backup} ({exc.strerror})") from None
    return result


def storage_login(path: str) -> tuple[str | None, str | None]:
    """The ``username`` and ``password`` of the storage block of a service's config file: how the service logs in.
    Either is None when the file does not set it."""
    data, _stat = _read(path)
    text, _bom = _decode(data, path)
    storage = _check_document(_load(text, path)).get(STORAGE) or {}
    username, password = storage.get("username"), storage.get("password")
    return (
        None if username in (None, "") else str(username),
        None if password is None else str(password),
    )
