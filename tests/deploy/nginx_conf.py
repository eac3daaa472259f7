"""A small reader for nginx configuration files, enough to check directives in tests.

It turns ``name args;`` into ``Directive(name, args)`` and ``name args { ... }`` into a directive
with ``children``. Quoted strings and comments are handled; includes and variables are not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(r'#[^\n]*|"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[{};]|[^\s{};"\'#]+')


@dataclass
class Directive:
    name: str
    args: list[str]
    children: list[Directive] = field(default_factory=list)

    def all(self, name: str) -> list[Directive]:
        return [child for child in self.children if child.name == name]

    def one(self, name: str) -> Directive:
        (found,) = self.all(name)
        return found

    def walk(self):  # type: ignore[no-untyped-def]
        for child in self.children:
            yield child
            yield from child.walk()


def parse(text: str) -> Directive:
    """The whole file as the children of a root directive named ``""``."""
    tokens = [t for t in _TOKEN.findall(text) if not t.startswith("#")]
    root = Directive("", [])
    stack = [root]
    words: list[str] = []
    for token in tokens:
        if token == ";":
            stack[-1].children.append(Directive(words[0], words[1:]))
            words = []
        elif token == "{":
            block = Directive(words[0], words[1:])
            stack[-1].children.append(block)
            stack.append(block)
            words = []
        elif token == "}":
            if words or len(stack) == 1:
                raise ValueError("unbalanced block")
            stack.pop()
        else:
            words.append(_unquote(token))
    if words or len(stack) != 1:
        raise ValueError("unterminated directive or block")
    return root


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "\"'":
        return token[1:-1]
    return token
