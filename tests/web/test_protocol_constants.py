"""web/static/js/protocol.js holds the same protocol constants as the Python side.

The Python definitions stay where they are (signaling/ws_messages.py, ws_endpoint.py,
consultations.py, sfu/chat_bridge.py); this test collects them by name pattern, so a constant
added there without its JS twin fails here, and so does a JS constant that no Python one backs.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path
from types import ModuleType

import sfu.chat_bridge
import signaling.consultations
import signaling.ws_endpoint
import signaling.ws_messages

JS_DIR = Path(__file__).resolve().parents[2] / "web" / "static" / "js"
PROTOCOL_JS = JS_DIR / "protocol.js"

# (module, which of its module-level names are protocol constants, the name's prefix in JS)
PYTHON_SOURCES: list[tuple[ModuleType, str, str]] = [
    (signaling.ws_messages, r"PROTOCOL_VERSION|MAX_\w+", ""),
    (signaling.ws_endpoint, r"CLOSE_\w+", ""),
    (signaling.consultations, r"CLOSE_\w+|SHUTDOWN", ""),
    (signaling.consultations, r"LEFT|LOST", "GONE_"),
    (sfu.chat_bridge, r"CHAT_CHANNEL_\w+|MAX_MESSAGE_BYTES|BURST|PER_SECOND", "CHAT_"),
]
# Constants only the pages have; each is checked against a Python limit below.
JS_ONLY = {"CHAT_MAX_CHARS"}

_EXPORT = re.compile(r"^export const (\w+) = (.+?);\s*(?://.*)?$")
_FROZEN = re.compile(r"^export const (\w+) = Object\.freeze\(\{$")
_ENTRY = re.compile(r'^\s*(\w+): ("[^"\\]*"),$')


def js_constants(source: str) -> dict[str, object]:
    """The module's exports: numbers, strings, and Object.freeze({...}) of strings. Any other
    export is an error, so nothing in the module escapes this check."""
    constants: dict[str, object] = {}
    lines = iter(source.splitlines())
    for line in lines:
        if frozen := _FROZEN.match(line):
            entries: dict[str, str] = {}
            for entry_line in lines:
                if entry_line == "});":
                    break
                entry = _ENTRY.match(entry_line)
                assert entry, f"protocol.js: cannot read {entry_line!r} in {frozen[1]}"
                entries[entry[1]] = json.loads(entry[2])
            constants[frozen[1]] = entries
        elif line.startswith("export"):
            export = _EXPORT.match(line)
            assert export, f"protocol.js: cannot read {line!r}"
            try:
                constants[export[1]] = json.loads(export[2])
            except ValueError:
                raise AssertionError(f"protocol.js: cannot read the value in {line!r}") from None
    return constants


def python_constants() -> dict[str, object]:
    constants: dict[str, object] = {}
    for module, pattern, prefix in PYTHON_SOURCES:
        for name, value in vars(module).items():
            if re.fullmatch(pattern, name):
                js_name = name if name.startswith(prefix) else prefix + name
                constants[js_name] = value
    return constants


def python_error_codes() -> set[str]:
    """Every `code` the server puts in an `error` message: Refusal(code, ...), _error(connection,
    code, ...), _message("error", code=...), and the client refusal table's tuples."""
    codes: set[str] = set()
    for module in (signaling.ws_endpoint, signaling.consultations):
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if isinstance(node, ast.Call):
                func = node.func
                callee = getattr(func, "attr", None) or getattr(func, "id", None)
                literal = [a.value for a in node.args if isinstance(a, ast.Constant)]
                if callee in ("Refusal", "_error") and literal:
                    codes.add(literal[0])
                elif callee == "_message" and literal == ["error"]:
                    codes.update(k.value.value for k in node.keywords if k.arg == "code")
    for code, _message, _close in signaling.ws_endpoint._CLIENT_REFUSALS.values():
        codes.add(code)
    return {code for code in codes if isinstance(code, str)}


def test_protocol_js_has_every_python_constant_with_the_same_value():
    js = js_constants(PROTOCOL_JS.read_text(encoding="utf-8"))
    python = python_constants()
    missing = sorted(set(python) - set(js))
    assert not missing, f"protocol.js lacks {missing}"
    differ = {name: (js[name], value) for name, value in python.items() if js[name] != value}
    assert not differ, f"protocol.js differs from Python (js, python): {differ}"


def test_every_protocol_js_constant_has_a_python_twin():
    js = js_constants(PROTOCOL_JS.read_text(encoding="utf-8"))
    unbacked = sorted(set(js) - set(python_constants()) - JS_ONLY - {"ERROR"})
    assert not unbacked, f"protocol.js has constants the server does not define: {unbacked}"


def test_protocol_js_error_codes_are_exactly_those_the_server_sends():
    js = js_constants(PROTOCOL_JS.read_text(encoding="utf-8"))
    js_codes = set(js["ERROR"].values())  # type: ignore[union-attr]
    server = python_error_codes()
    assert server, "found no error codes in the server's source: has the way they are sent changed?"
    assert not server - js_codes, f"protocol.js ERROR lacks {sorted(server - js_codes)}"
    assert not js_codes - server, f"the server never sends {sorted(js_codes - server)}"


def test_a_longest_chat_message_sealed_fits_what_the_relay_accepts():
    js = js_constants(PROTOCOL_JS.read_text(encoding="utf-8"))
    # UTF-8 needs at most 3 bytes per UTF-16 unit; 1 key id + 12 IV + 16 GCM tag bytes around it.
    sealed = 3 * js["CHAT_MAX_CHARS"] + 1 + 12 + 16  # type: ignore[operator]
    assert sealed <= sfu.chat_bridge.MAX_MESSAGE_BYTES


def test_no_other_module_writes_a_close_code_or_the_chat_channel_itself():
    js = js_constants(PROTOCOL_JS.read_text(encoding="utf-8"))
    codes = "|".join(str(value) for name, value in js.items() if name.startswith("CLOSE_"))
    for path in sorted(JS_DIR.glob("*.js")):
        if path == PROTOCOL_JS:
            continue
        # Comments may name a code; code may not.
        text = re.sub(r"//.*|/\*.*?\*/", "", path.read_text(encoding="utf-8"), flags=re.S)
        bare = re.search(rf"\b({codes})\b", text)
        assert not bare, f"{path.name}: the close code {bare and bare[0]} instead of its name"
        assert not re.search(r"negotiated: true, id: \d", text), f"{path.name}: a bare channel id"


def test_the_reader_refuses_an_export_it_cannot_check():
    try:
        js_constants("export const LIMIT = 2 * 1024;\nexport function f() {}\n")
    except AssertionError as error:
        assert "cannot read" in str(error)
    else:
        raise AssertionError("an expression export was accepted unchecked")
