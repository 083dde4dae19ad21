"""The masking corpus the Rust tests use, read from the repository.

From `src/redact/corpus.txt` when it exists (lines `MASK<TAB>input<TAB>secret`
or `KEEP<TAB>input`, optionally `SECRET<TAB>known secret`, `#` comments, `\\n`/`\\t`/`\\\\` escapes), else parsed
from the `must_mask()` / `must_keep()` lists of `src/redact/tests.rs`, so
Python is checked against exactly the lines the gateway is.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Tuple

REDACT = Path(__file__).resolve().parents[2] / "src" / "redact"

_STR = r'"((?:[^"\\]|\\.)*)"'
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), s)


def _consts(src: str) -> dict:
    return {m.group(1): _unescape(m.group(2)) for m in re.finditer(r"const (\w+): &str = " + _STR + ";", src)}


def _body(src: str, name: str) -> str:
    start = src.index(f"fn {name}()")
    end = src.index("\n}\n", start)
    return src[start:end]


def _expr(expr: str, names: dict) -> str:
    expr = expr.strip()
    if expr in names:
        return names[expr]
    m = re.fullmatch(r"format!\(" + _STR + r"\)", expr)
    if m:
        # `{{` and `}}` are literal braces, `{name}` an argument, read left to right.
        def piece(v: re.Match) -> str:
            return names[v.group(1)] if v.group(1) else v.group(0)[0]

        return re.sub(r"\{\{|\}\}|\{(\w+)\}", piece, _unescape(m.group(1)))
    m = re.fullmatch(_STR + r"(?:\.into\(\))?", expr)
    if m:
        return _unescape(m.group(1))
    raise ValueError(f"corpus: cannot read {expr!r}")


def _from_tests_rs(path: Path) -> Tuple[str, List[Tuple[str, str]], List[str]]:
    src = path.read_text()
    names = _consts(src)
    names["s"] = names["SECRET"]
    item = r"(format!\(" + _STR + r"\)|" + _STR + r"(?:\.into\(\))?)"
    masked = [
        (_expr(m.group(1), names), _expr(m.group(4), names))
        for m in re.finditer(r"\(\s*" + item + r",\s*(\w+|" + _STR + r")\s*\)", _body(src, "must_mask"))
    ]
    kept = [_unescape(m.group(1)) for m in re.finditer(_STR, _body(src, "must_keep"))]
    return names["SECRET"], masked, kept


def _from_corpus_txt(path: Path, secret: str) -> Tuple[str, List[Tuple[str, str]], List[str]]:
    masked, kept = [], []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        kind, *rest = line.split("\t")
        fields = [_unescape(f) for f in rest]
        if kind == "MASK":
            masked.append((fields[0], fields[1]))
        elif kind == "KEEP":
            kept.append(fields[0])
        elif kind == "SECRET":
            secret = fields[0]
        else:
            raise ValueError(f"corpus.txt: unknown line kind {kind!r}")
    return secret, masked, kept


def load() -> Tuple[str, List[Tuple[str, str]], List[str]]:
    """(the known secret, [(line, secret part that must go)], [lines that must stay])."""
    tests_rs = REDACT / "tests.rs"
    secret = _consts(tests_rs.read_text()).get("SECRET", "") if tests_rs.exists() else ""
    corpus = REDACT / "corpus.txt"
    if corpus.exists():
        return _from_corpus_txt(corpus, secret)
    return _from_tests_rs(tests_rs)
