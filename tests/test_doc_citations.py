"""Every citation of a project document resolves inside the repository.

Code, tests and docs cite the project's references by file and section: ``docs/uintr.md §8``,
``docs/uintr.md §6.5``, ``docs/engine-notes.md §5.3``, ``docs/engine-notes.md G14``. A section
number must match a heading of the cited file (``## §8. ...``, ``### §6.5 ...``), a gotcha label a
``### G14. ...`` heading. Two conventions shorten citations (docs/uintr.md §0, the opening of
docs/engine-notes.md): a bare ``§n`` means docs/uintr.md §n (inside a document that has its own
``§`` headings, that document's §n), unless another document is named just before it
(``SDM Vol.3 §6.15``, ``ABI §3.4.1``); a bare ``G1``..``G14`` means docs/engine-notes.md Gn.

No citation may point outside the repository: the documents the code was first written against
(``../shared/docs/...``) are restated in docs/uintr.md and docs/engine-notes.md.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("src", "tests", "benchmarks", "docs", "examples", "README.md")
TEXT_SUFFIXES = {".py", ".c", ".h", ".S", ".md", ".txt", ".toml"}
SKIPPED_DIRS = {"__pycache__", "bin", "build", ".venv"}
THIS_FILE = Path(__file__).resolve().relative_to(ROOT).as_posix()

# Names of the external documents and the old spellings used to cite them.
OLD_CITATIONS = re.compile(
    r"shared/docs|\.\./shared|uintr-architecture\.md|unicorn-notes|system-mode-notes"
    r"|\barch(?:itecture)? doc\b|\bUnicorn\s+notes\b"
)

SECTION = r"§\d+(?:\.\d+)*"
LABEL = r"G\d+\b"
# Between two words of one citation: blanks, or a line break followed by a comment leader.
GAP = r"(?:[ \t]+|[ \t]*\n[ \t]*(?:#|\*|//)?[ \t]*)"
# A list of sections: "§6.5/§7", "§10-§11", "§5, §16", "§6.1, §6.3,\n§6.4".
CHAIN_SEP = rf"(?:[ \t]*(?:,|/|and|-|–)[ \t]*{GAP}?)"
EXPLICIT = re.compile(
    rf"(?<![\w/.-])docs/(?P<file>[\w.-]+\.md)`?{GAP}"
    rf"(?P<refs>(?:{SECTION}|{LABEL})(?:{CHAIN_SEP}(?:{SECTION}|{LABEL}))*)"
)
REF = re.compile(rf"{SECTION}|{LABEL}")
HEADING = re.compile(rf"^#{{1,6}}[ \t]+({SECTION}|G\d+)(?=[.\s])", re.MULTILINE)
MENTION = re.compile(r"(?<![\w/.-])docs/(?P<file>[\w.-]+\.md)")
BARE_LABEL = re.compile(rf"(?<![\w/.-]){LABEL}")
BARE_SECTION = re.compile(SECTION)
# What may stand right before a section number that belongs to another document.
QUALIFIER = re.compile(r"(?:\b(?:SDM|Vol\.\s?\d+[A-D]?|ABI|doc|notes|Unicorn)|\.md`?)[\s(]*$")
CHAIN_BEFORE = re.compile(rf"(?:{SECTION}(?:[ \t]+#\d+)?{CHAIN_SEP})+$")


def scanned_files() -> list[Path]:
    files: list[Path] = []
    for name in SCANNED:
        path = ROOT / name
        if path.is_file():
            files.append(path)
            continue
        for f in sorted(path.rglob("*")):
            rel = f.relative_to(ROOT)
            if (
                f.is_file()
                and f.suffix in TEXT_SUFFIXES
                and not SKIPPED_DIRS.intersection(rel.parts)
            ):
                files.append(f)
    return files


@cache
def headings(doc: str) -> frozenset[str]:
    path = ROOT / "docs" / doc
    return frozenset(HEADING.findall(path.read_text())) if path.is_file() else frozenset()


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def where(path: Path, text: str, pos: int) -> str:
    return f"{path.relative_to(ROOT).as_posix()}:{line_of(text, pos)}"


def is_legacy(doc: str) -> bool:
    """A citation of an outside document, spelled as a path; test_no_citation_leaves_the_repo
    reports those."""
    return bool(OLD_CITATIONS.search(doc))


def test_the_references_exist_with_their_headings() -> None:
    uintr, engine = headings("uintr.md"), headings("engine-notes.md")
    assert {f"§{n}" for n in range(18)} <= uintr
    assert {"§5.1", "§5.2", "§6.5", "§10.3", "§11.6"} <= uintr
    assert {f"G{n}" for n in range(1, 15)} <= engine
    assert {"§2", "§5.2", "§5.3", "§6", "§10", "§14"} <= engine


def test_explicit_citations_resolve() -> None:
    """``docs/<file>.md §n`` and ``docs/engine-notes.md Gn``: the file exists, with the heading."""
    bad = []
    for path in scanned_files():
        if path.relative_to(ROOT).as_posix() == THIS_FILE:
            continue
        text = path.read_text(errors="replace")
        for m in EXPLICIT.finditer(text):
            doc = m.group("file")
            if is_legacy(doc):
                continue
            for ref in REF.findall(m.group("refs")):
                if ref not in headings(doc):
                    bad.append(f"{where(path, text, m.start())}: docs/{doc} {ref}")
    assert not bad, "citations without a matching heading:\n" + "\n".join(bad)


def test_mentioned_documents_exist() -> None:
    bad = []
    for path in scanned_files():
        if path.relative_to(ROOT).as_posix() == THIS_FILE:
            continue
        text = path.read_text(errors="replace")
        for m in MENTION.finditer(text):
            doc = m.group("file")
            if not is_legacy(doc) and not (ROOT / "docs" / doc).is_file():
                bad.append(f"{where(path, text, m.start())}: docs/{doc}")
    assert not bad, "mentions of documents that do not exist:\n" + "\n".join(bad)


def test_bare_gotcha_labels_resolve() -> None:
    """A bare ``Gn`` is a gotcha of docs/engine-notes.md."""
    engine = headings("engine-notes.md")
    bad = []
    for path in scanned_files():
        if path.relative_to(ROOT).as_posix() == THIS_FILE:
            continue
        text = path.read_text(errors="replace")
        for m in BARE_LABEL.finditer(text):
            if m.group() not in engine:
                bad.append(f"{where(path, text, m.start())}: {m.group()}")
    assert not bad, "gotcha labels missing from docs/engine-notes.md:\n" + "\n".join(bad)


def test_bare_sections_resolve() -> None:
    """A bare ``§n`` is a section of docs/uintr.md, or of the document it is written in if that
    has ``§`` headings of its own; section numbers right after another document's name (SDM,
    ``Vol.3``, ABI, a ``.md`` file) are that document's and are not checked here."""
    bad = []
    for path in scanned_files():
        rel = path.relative_to(ROOT).as_posix()
        if rel == THIS_FILE:
            continue
        text = path.read_text(errors="replace")
        own = headings(path.name) if rel.startswith("docs/") else frozenset()
        target = own or headings("uintr.md")
        for m in BARE_SECTION.finditer(text):
            before = text[max(0, m.start() - 200) : m.start()]
            chain = CHAIN_BEFORE.search(before)
            rest = before[: chain.start()] if chain else before
            if QUALIFIER.search(rest.rstrip(" \t\n#*/") + " "):
                continue
            if m.group() not in target:
                bad.append(f"{where(path, text, m.start())}: {m.group()}")
    assert not bad, "bare section numbers without a heading:\n" + "\n".join(bad)


def test_no_citation_leaves_the_repo() -> None:
    """Nothing cites ../shared/docs or the old names of the references (arch doc §n,
    unicorn-notes §n, uintr-architecture.md, ...); scripts/migrate_citations.py rewrites them."""
    bad = []
    for path in scanned_files():
        if path.relative_to(ROOT).as_posix() == THIS_FILE:
            continue
        text = path.read_text(errors="replace")
        for m in OLD_CITATIONS.finditer(text):
            bad.append(f"{where(path, text, m.start())}: {m.group()}")
    assert not bad, "citations of documents outside the repository:\n" + "\n".join(bad)
