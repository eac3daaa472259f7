"""RFC 7983's byte ranges are written once, in ``sfu.rtp``: the socket reader and the ICE guard
demultiplex inline (a call per datagram costs) but with its constants, never their own numbers."""

from __future__ import annotations

import ast
from pathlib import Path

SFU = Path(__file__).parents[2] / "sfu"


def test_no_module_but_rtp_compares_a_datagrams_first_bytes_with_a_number():
    found = []
    for path in sorted(SFU.glob("*.py")):
        if path.name == "rtp.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and _reads_a_leading_byte(node):
                operands = [node.left, *node.comparators]
                if any(isinstance(o, ast.Constant) and isinstance(o.value, int) for o in operands):
                    found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    assert found == []


def _reads_a_leading_byte(node: ast.Compare) -> bool:
    """``data[0]``, ``data[1]`` or a name ``first`` among the operands."""
    for operand in (node.left, *node.comparators):
        if isinstance(operand, ast.Name) and operand.id == "first":
            return True
        if (
            isinstance(operand, ast.Subscript)
            and isinstance(operand.slice, ast.Constant)
            and operand.slice.value in (0, 1)
        ):
            return True
    return False
