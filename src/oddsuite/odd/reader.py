"""Spec text → plain data, safely: one pass over the YAML parser's events.

The spec is read event by event (PyYAML's parser is iterative), building dicts, lists
and scalars directly, so nothing recursive ever sees the input and every size is bounded
before it costs memory or time:

- anchors and aliases (``&a`` / ``*a``) are refused: they are how a few hundred bytes
  expand to gigabytes ("billion laughs") or to a structure that contains itself, and a
  spec that is evidence should say every value where it applies;
- nesting deeper than ``MAX_DEPTH``, more than ``MAX_NODES`` values, or text longer than
  ``MAX_SPEC_CHARS`` are refused;
- a key that appears twice in one mapping is an error naming both lines (YAML would let
  the last one silently win);
- non-finite numbers (``.nan``, ``.inf``, ``-.inf``) are refused wherever they appear;
- YAML 1.1 surprises (an unquoted ``no``, ``on``, ``yes`` read as a boolean, ``1:30``
  read as 90, a date read as a date) are remembered per path, so that a later error
  about that value tells the user to quote it.

Every problem is a ``Problem`` (line, YAML path, message); ``spec_error`` formats them
as the one ``SpecError`` the CLI prints.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

import yaml

from oddsuite.errors import SpecError

#: a spec is a page of YAML; these bounds are far above any real spec and far below harm
MAX_SPEC_CHARS = 1 << 20
MAX_DEPTH = 32
MAX_NODES = 100_000

_STD = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_STD + t for t in ("str", "int", "float", "bool", "null")}
_MAP_TAGS = (None, "!", _STD + "map")
_SEQ_TAGS = (None, "!", _STD + "seq")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec: its line (1-based, None when unknown), YAML path, message."""

    line: Optional[int]
    path: tuple
    message: str


def fmt_path(path: Iterable[Any]) -> str:
    """``("objects", "car", "count")`` → ``objects.car.count``; the empty path is ``(top)``."""
    return ".".join(str(p) for p in path) or "(top)"


def spec_error(source: str, problems: Iterable[Problem]) -> SpecError:
    """The SpecError for ``problems``: ``invalid ODD spec`` then one ``file:line: path: message``
    each, in the order of the file."""
    ordered = sorted(problems, key=lambda p: p.line or 0)  # in the order of the file
    msgs = [f"{source}:{p.line}: {fmt_path(p.path)}: {p.message}" if p.line else
            f"{source}: {fmt_path(p.path)}: {p.message}" for p in ordered]
    return SpecError("invalid ODD spec\n  " + "\n  ".join(msgs))


class _Stop(Exception):
    def __init__(self, problem: Problem):
        self.problem = problem


@dataclass(frozen=True)
class YamlDoc:
    """The data of a spec with the line of every mapping key and sequence item (by YAML path)
    and the YAML 1.1 hints (by the path of the surprising value)."""

    data: Any
    lines: dict[tuple, int] = field(default_factory=dict)
    hints: dict[tuple, str] = field(default_factory=dict)

    def line_of(self, path: tuple) -> Optional[int]:
        """The line of ``path``, or of its nearest ancestor the reader saw."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())

    def hints_at(self, path: tuple) -> list[str]:
        """Hints for values at, under or above ``path``."""
        path = tuple(path)
        n = len(path)
        return [h for p, h in self.hints.items() if p[:n] == path or path[:len(p)] == p]


class _Frame:
    __slots__ = ("kind", "path", "value", "key", "key_lines")

    def __init__(self, kind: str, path: tuple):
        self.kind, self.path = kind, path
        self.value: Any = {} if kind == "map" else []
        self.key: Any = _NO_KEY
        self.key_lines: dict[Any, int] = {}


_NO_KEY = object()


def read_yaml(text: str, source: str = "<string>") -> YamlDoc:
    """Read spec text into plain data. Raises SpecError (see the module doc for what is refused)."""
    if len(text) > MAX_SPEC_CHARS:
        raise spec_error(source, [Problem(1, (), f"the spec is {len(text)} characters long; at most "
                                                 f"{MAX_SPEC_CHARS} are read")])
    try:
        loader = yaml.SafeLoader(text)  # checks every character first
    except yaml.reader.ReaderError as e:
        line = _error_line(e, text)
        fixed = text[:e.position] + " " + text[e.position + 1:]
        raise spec_error(source, [Problem(line, path_on_line(fixed, line), f"not valid YAML: {_yaml_text(e)}")]) from None
    reader = _Reader(loader)
    try:
        return reader.run()
    except _Stop as e:
        raise spec_error(source, [e.problem]) from None
    except yaml.YAMLError as e:
        raise spec_error(source, [Problem(_error_line(e, text), reader.path(), f"not valid YAML: {_yaml_text(e)}")]) from None
    finally:
        loader.dispose()


def path_on_line(text: str, line: Optional[int]) -> tuple:
    """The deepest YAML path whose key or item starts on ``line`` of ``text`` (``()`` when
    none does or the text does not read): where to point at a bad character."""
    if line is None:
        return ()
    try:
        doc = read_yaml(text)
    except SpecError:
        return ()
    on_line = [p for p, ln in doc.lines.items() if ln == line]
    return max(on_line, key=len) if on_line else ()


def _error_line(e: yaml.YAMLError, text: str) -> Optional[int]:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    if mark is not None:
        return mark.line + 1
    pos = getattr(e, "position", None)  # ReaderError (a character YAML does not allow)
    return text.count("\n", 0, pos) + 1 if isinstance(pos, int) else None


def _yaml_text(e: yaml.YAMLError) -> str:
    if isinstance(e, yaml.reader.ReaderError):
        return f"the character {chr(e.character)!r} (U+{e.character:04X}) is not allowed in YAML" \
            if isinstance(e.character, int) else str(e)
    parts = [getattr(e, "context", None), getattr(e, "problem", None)]
    s = ", ".join(p for p in parts if p)
    return s or str(e).splitlines()[0]


class _Reader:
    def __init__(self, loader: yaml.SafeLoader):
        self.loader = loader
        self.stack: list[_Frame] = []
        self.lines: dict[tuple, int] = {}
        self.hints: dict[tuple, str] = {}
        self.nodes = 0

    def path(self) -> tuple:
        """The YAML path of the next node (a mapping key reports its mapping's path)."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if top.kind == "seq":
            return top.path + (len(top.value),)
        return top.path if top.key is _NO_KEY else top.path + (top.key,)

    def stop(self, line: Optional[int], msg: str, path: Optional[tuple] = None) -> _Stop:
        return _Stop(Problem(line, self.path() if path is None else path, msg))

    def run(self) -> YamlDoc:
        root: Any = None
        docs = 0
        ld = self.loader
        while True:
            ev = ld.get_event()
            if isinstance(ev, yaml.StreamEndEvent):
                break
            if isinstance(ev, yaml.DocumentStartEvent):
                docs += 1
                if docs > 1:
                    raise self.stop(ev.start_mark.line + 1, "a spec is one YAML document; found a second '---'", ())
                continue
            if isinstance(ev, (yaml.StreamStartEvent, yaml.DocumentEndEvent)):
                continue
            if isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                frame = self.stack.pop()
                value = frame.value
                if self.stack:
                    self.put(value, ev.start_mark.line + 1, None)
                else:
                    root = value
                continue
            line = ev.start_mark.line + 1
            self.nodes += 1
            if isinstance(ev, yaml.AliasEvent):
                raise self.stop(line, f"YAML aliases (*{ev.anchor}) are not allowed in an ODD spec; write the value out")
            if ev.anchor is not None:
                raise self.stop(line, f"YAML anchors (&{ev.anchor}) are not allowed in an ODD spec; write every value "
                                      f"where it applies")
            if self.nodes > MAX_NODES:
                raise self.stop(line, f"the spec holds more than {MAX_NODES} values")
            if isinstance(ev, yaml.ScalarEvent):
                value = self.scalar(ev, line)
                if self.stack:
                    self.put(value, line, ev)
                else:
                    root = value
                continue
            # a mapping or a sequence starts
            if self.stack and self.stack[-1].kind == "map" and self.stack[-1].key is _NO_KEY:
                raise self.stop(line, "a mapping key must be a plain value, not a list or a mapping")
            if len(self.stack) >= MAX_DEPTH:
                raise self.stop(line, f"nested deeper than {MAX_DEPTH} levels")
            is_map = isinstance(ev, yaml.MappingStartEvent)
            if ev.tag not in (_MAP_TAGS if is_map else _SEQ_TAGS):
                raise self.stop(line, f"YAML tags ({ev.tag}) are not supported in an ODD spec")
            self.stack.append(_Frame("map" if is_map else "seq", self.path()))
        return YamlDoc(root, self.lines, self.hints)

    def put(self, value: Any, line: int, ev: Optional[yaml.ScalarEvent]) -> None:
        top = self.stack[-1]
        if top.kind == "seq":
            self.lines[top.path + (len(top.value),)] = line
            top.value.append(value)
        elif top.key is _NO_KEY:  # value is a key
            if value in top.key_lines:
                raise self.stop(line, f"duplicate key {value!r}: first at line {top.key_lines[value]}, again at line "
                                      f"{line}; a key may appear only once in a mapping", top.path + (value,))
            top.key_lines[value] = line
            top.key = value
            self.lines[top.path + (value,)] = line
            if ev is not None:
                self.hint(ev, value, top.path + (value,))
        else:
            top.value[top.key] = value
            top.key = _NO_KEY

    def scalar(self, ev: yaml.ScalarEvent, line: int) -> Any:
        ld = self.loader
        if ev.tag in (None, "!"):
            tag = ld.resolve(yaml.ScalarNode, ev.value, ev.implicit)
        elif ev.tag in _SCALAR_TAGS:
            tag = ev.tag
        else:
            raise self.stop(line, f"YAML tags ({ev.tag}) are not supported in an ODD spec")
        node = yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, style=ev.style)
        try:
            value = ld.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as e:
            raise self.stop(line, f"cannot read the value {ev.value[:40]!r}: {str(e).splitlines()[0]}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise self.stop(line, f"{ev.value!r} is not a finite number; every number in a spec must be finite")
        # the path of a key scalar is only known once the key is read: put() does that
        if not (self.stack and self.stack[-1].kind == "map" and self.stack[-1].key is _NO_KEY):
            self.hint(ev, value, self.path())
        return value

    def hint(self, ev: yaml.ScalarEvent, value: Any, path: tuple) -> None:
        if ev.tag is not None or not ev.implicit[0]:
            return  # quoted or explicitly tagged: the user said what they meant
        raw = ev.value
        if isinstance(value, bool) and raw.lower() not in ("true", "false"):
            self.hints[path] = (f"YAML reads the unquoted {raw} as the boolean {str(value).lower()}; "
                                f"write '{raw}' in quotes if you mean the text")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and (
                ":" in raw or raw.lower().startswith(("0x", "0b", "0o")) or (len(raw) > 1 and raw[0] == "0" and raw[1:2].isdigit())):
            self.hints[path] = (f"YAML 1.1 reads the unquoted {raw} as the number {value}; "
                                f"write '{raw}' in quotes if you mean the text")
        elif value is None and raw in ("", "~", "null", "Null", "NULL"):
            self.hints[path] = "the value is empty (YAML null); write a value, or quote it"
        elif not isinstance(value, (str, int, float, bool)):
            self.hints[path] = f"YAML reads the unquoted {raw} as a {type(value).__name__}; write '{raw}' in quotes"
