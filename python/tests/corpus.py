"""The masking corpus the Rust tests use, read from `src/redact/corpus.txt`,
so Python is checked against exactly the lines the gateway is.

One case a line, fields separated by one TAB, `#` comments and blank lines
ignored, `\\n` / `\\t` / `\\\\` escapes in a field (the file's header says the
same):

    KNOWN  secret                     an exact secret the masker is given
    MASK   input  secret  [expected]  `secret` is gone; when given, the output is `expected`
    KEEP   input                      the output is the input
"""

from __future__ import annotations

from pathlib import Path
from typing import List, NamedTuple, Optional

CORPUS = Path(__file__).resolve().parents[2] / "src" / "redact" / "corpus.txt"


class Mask(NamedTuple):
    line: str
    secret: str
    expected: Optional[str]


class Corpus(NamedTuple):
    known: List[str]
    masked: List[Mask]
    kept: List[str]


def _unescape(field: str) -> str:
    out, chars = [], iter(field)
    for c in chars:
        if c != "\\":
            out.append(c)
            continue
        nxt = next(chars, "")
        out.append({"n": "\n", "t": "\t", "\\": "\\"}.get(nxt, "\\" + nxt))
    return "".join(out)


def read(path: Path = CORPUS) -> Corpus:
    corpus = Corpus([], [], [])
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        kind, *rest = line.split("\t")
        fields = [_unescape(f) for f in rest]
        if kind == "KNOWN" and len(fields) == 1:
            corpus.known.append(fields[0])
        elif kind == "MASK" and len(fields) in (2, 3):
            corpus.masked.append(Mask(fields[0], fields[1], fields[2] if len(fields) == 3 else None))
        elif kind == "KEEP" and len(fields) == 1:
            corpus.kept.append(fields[0])
        else:
            raise ValueError(f"{path.name} line {n}: {line!r} is no case")
    return corpus
