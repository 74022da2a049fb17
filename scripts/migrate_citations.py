#!/usr/bin/env python3
"""Rewrite citations of the documents outside the repository into citations of docs/.

The code was first written against ../shared/docs/uintr-architecture.md ("arch doc §n",
"architecture doc §n", "docs/uintr-architecture.md §n", bare "§n") and
../shared/docs/unicorn-notes.md ("unicorn-notes §n", "the Unicorn notes §n", "G1".."G14").
Their content now lives in docs/uintr.md and docs/engine-notes.md with the same section numbers and
labels, so every citation maps one to one:

    arch doc §8                              -> docs/uintr.md §8
    architecture doc §5.2                    -> docs/uintr.md §5.2
    ../shared/docs/uintr-architecture.md     -> docs/uintr.md
    docs/uintr-architecture.md               -> docs/uintr.md
    unicorn-notes §6, the Unicorn notes §10  -> docs/engine-notes.md §6, docs/engine-notes.md §10
    unicorn-notes G2                         -> docs/engine-notes.md G2
    G14 (bare)                               -> docs/engine-notes.md G14     (--bare-labels expand)

Bare section numbers ("(§4)") keep their meaning: in this repository a bare §n is docs/uintr.md §n
(docs/uintr.md §0). A file whose header says so ("Section numbers (§) refer to ...") gets only
that header rewritten. In a file without such a header and without any explicit docs/uintr.md
citation, the first bare §n is written out as "docs/uintr.md §n" so that the file names its
reference once (--bare-sections first, the default); "all" writes out every one, "keep" none.
Section numbers of other documents ("SDM Vol.3 §6.15", "ABI §3.4.1") are never touched.

Usage (from the repository root):

    python3 scripts/migrate_citations.py --check   # list what would change; exit 1 if anything
    python3 scripts/migrate_citations.py           # rewrite the files, then list what changed

Lines that end up longer than the line length of pyproject.toml (100) are listed at the end so
they can be re-wrapped by hand; references that have no counterpart in docs/ (e.g.
../shared/docs/design.md) are listed as unhandled.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import textwrap
import tokenize
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROOTS = ("src", "tests", "benchmarks", "docs", "examples", "README.md")
TEXT_SUFFIXES = {".py", ".c", ".h", ".S", ".md", ".txt", ".toml"}
SKIPPED_DIRS = {"__pycache__", "bin", "build", ".venv"}
# Already in their final form, or about the migration itself.
SKIPPED_FILES = {
    "docs/uintr.md",
    "docs/engine-notes.md",
    "docs/CITATIONS-MIGRATION.md",
    "tests/test_doc_citations.py",
}
LINE_LENGTH = 100

UINTR = "docs/uintr.md"
ENGINE = "docs/engine-notes.md"

SECTION = r"§\d+(?:\.\d+)*"
LABEL = r"G(?:1[0-4]|[1-9])\b"
# Between two words of one citation: blanks, or a line break and the next line's comment leader.
GAP = r"(?:[ \t]+|[ \t]*\n[ \t]*(?:#|\*|//)?[ \t]*)"
CHAIN_SEP = rf"(?:[ \t]*(?:,|/|and|-|–)[ \t]*{GAP}?)"
QUALIFIER = re.compile(r"(?:\b(?:SDM|Vol\.\s?\d+[A-D]?|ABI|doc|notes|Unicorn)|\.md`?)[\s(]*$")
CHAIN_BEFORE = re.compile(rf"(?:(?:{SECTION}|{LABEL})(?:[ \t]+#\d+)?{CHAIN_SEP})+$")
# A file with one of these says what its bare § numbers refer to.
HEADERS = re.compile(r"Section numbers \(§\) refer to|cited as §n|cited \"§n\"|§ below refers to")
UNHANDLED = re.compile(
    r"(?:\.\./)?shared/docs/[\w.-]+|(?<![\w/.-])(?:uintr-architecture|unicorn-notes"
    r"|system-mode-notes)\.md|\barch(?:itecture)? doc\b|\bunicorn-notes\b|\bUnicorn\s+notes\b"
)


@dataclass
class Change:
    line: int
    old: str
    new: str
    rule: str


def phrase(words: str) -> str:
    """A regex for a phrase whose words may be split over comment lines."""
    return GAP.join(words.split())


def replace_phrase(target: str) -> Callable[[re.Match[str]], str]:
    """Replace the words matched by a phrase rule with ``target``, keeping a line break that fell
    inside the phrase (the target then starts the next line, after its comment leader)."""

    def repl(m: re.Match[str]) -> str:
        lead, words, gap = m.group("lead"), m.group("words"), m.group("gap")
        if "\n" in words:
            continuation = words[words.rindex("\n") :]
            leader = re.match(r"\n[ \t]*(?:#|\*|//)?[ \t]*", continuation)
            assert leader is not None
            lead = leader.group()
        return f"{lead}{target}{gap if chr(10) in gap else ' '}"

    return repl


# (name, pattern, replacement). Applied in this order to every file.
RULES: list[tuple[str, re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (
        "path of the architecture doc",
        re.compile(r"(?:\.\./)?shared/docs/uintr-architecture\.md"),
        UINTR,
    ),
    (
        "path of the architecture doc",
        re.compile(r"(?<![\w/.-])(?:docs/)?uintr-architecture\.md"),
        UINTR,
    ),
    (
        "path of the Unicorn notes",
        re.compile(r"(?:\.\./)?shared/docs/unicorn-notes\.md|(?<![\w/.-])unicorn-notes\.md"),
        ENGINE,
    ),
    (
        "path of the system-mode notes",
        re.compile(r"(?:\.\./)?shared/docs/system-mode-notes\.md"),
        f"{ENGINE} §14",
    ),
    (
        "examples/uintr.h wording",
        re.compile(rf"\(docs: {re.escape(UINTR)}, section (\d+)\)"),
        rf"({UINTR} §\1)",
    ),
    (
        "arch doc §n",
        re.compile(
            rf"(?P<lead>[ \t]*)(?P<words>\b(?:{phrase('arch doc')}|{phrase('architecture doc')}))"
            rf"(?P<gap>{GAP})(?={SECTION})"
        ),
        replace_phrase(UINTR),
    ),
    (
        "unicorn-notes §n / Gn",
        re.compile(
            rf"(?P<lead>[ \t]*)(?P<words>\b(?:(?:the{GAP})?{phrase('Unicorn notes')}"
            rf"|unicorn-notes))(?P<gap>{GAP})(?={SECTION}|{LABEL})",
            re.IGNORECASE,
        ),
        replace_phrase(ENGINE),
    ),
]


def text_files() -> Iterator[Path]:
    for name in ROOTS:
        path = ROOT / name
        if path.is_file():
            yield path
            continue
        for f in sorted(path.rglob("*")):
            rel = f.relative_to(ROOT)
            if (
                f.is_file()
                and f.suffix in TEXT_SUFFIXES
                and not SKIPPED_DIRS.intersection(rel.parts)
                and rel.as_posix() not in SKIPPED_FILES
            ):
                yield f


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def line_at(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return text[start : len(text) if end < 0 else end]


def substitute(
    text: str,
    pattern: re.Pattern[str],
    repl: str | Callable[[re.Match[str]], str],
    rule: str,
    changes: list[Change],
    keep: Callable[[str, re.Match[str]], bool] = lambda _t, _m: False,
) -> str:
    out: list[str] = []
    last = 0
    for m in pattern.finditer(text):
        if keep(text, m):
            continue
        new = m.expand(repl) if isinstance(repl, str) else repl(m)
        if new == m.group():
            continue
        line = line_of(text, m.start() + len(m.group()) - len(m.group().lstrip()))
        changes.append(Change(line, " ".join(m.group().split()), " ".join(new.split()), rule))
        out.append(text[last : m.start()])
        out.append(new)
        last = m.end()
    out.append(text[last:])
    return "".join(out)


def qualified(text: str, m: re.Match[str]) -> bool:
    """Whether the § number or label at ``m`` already belongs to a named document."""
    before = text[max(0, m.start() - 200) : m.start()]
    chain = CHAIN_BEFORE.search(before)
    rest = before[: chain.start()] if chain else before
    return bool(QUALIFIER.search(rest.rstrip(" \t\n#*/") + " "))


def label_range(text: str, m: re.Match[str]) -> bool:
    """Whether the label at ``m`` is part of a name for the whole range, as in "G1..G14" or
    "`G1`..`G14`", rather than a citation of one gotcha."""
    before, after = text[max(0, m.start() - 3) : m.start()], text[m.end() : m.end() + 3]
    return "`" in before[-1:] + after[:1] or ".." in before + after


def migrate(text: str, bare_sections: str, bare_labels: str) -> tuple[str, list[Change]]:
    changes: list[Change] = []
    for rule, pattern, repl in RULES:
        text = substitute(text, pattern, repl, rule, changes)

    if bare_labels == "expand":
        text = substitute(
            text,
            re.compile(rf"(?<![\w/.-]){LABEL}"),
            rf"{ENGINE} \g<0>",
            "bare Gn",
            changes,
            keep=lambda t, m: qualified(t, m) or label_range(t, m),
        )

    if bare_sections != "keep" and not HEADERS.search(text):
        anchored = UINTR in text
        pattern = re.compile(SECTION)

        def keep(t: str, m: re.Match[str]) -> bool:
            nonlocal anchored
            if qualified(t, m):
                return True
            if bare_sections == "first":
                if anchored:
                    return True
                anchored = True
            return False

        text = substitute(text, pattern, rf"{UINTR} \g<0>", "bare §n", changes, keep=keep)
    return text, changes


LIST_ITEM = re.compile(r"(?:[-*+]|\d+[.)])\s")
TRIPLE = ('"""', "'''")
# Kept on one line when re-wrapping: a document and the section or label cited in it.
CITATION_SPACE = re.compile(r"((?:docs/[\w.-]+\.md|SDM|Vol\.\d+)) (?=§|G\d|Vol\.)")


def fill(words: str, first: str, rest: str) -> list[str]:
    """Wrap ``words`` to LINE_LENGTH with the given line prefixes, never separating a document
    from the section number that follows it."""
    words = CITATION_SPACE.sub("\\1\0", " ".join(words.split()))
    lines = textwrap.wrap(
        words,
        width=LINE_LENGTH,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return [line.replace("\0", " ") for line in lines]


def docstring_lines(text: str) -> dict[int, tuple[int, int]]:
    """0-based line -> (first, last) line of the triple-quoted string statement containing it."""
    spans: dict[int, tuple[int, int]] = {}
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return spans
    starts_line = True
    for tok in tokens:
        if (
            tok.type == tokenize.STRING
            and starts_line
            and tok.string.lstrip("rbuRBU")[:3] in TRIPLE
        ):
            first, last = tok.start[0] - 1, tok.end[0] - 1
            for n in range(first, last + 1):
                spans[n] = (first, last)
        if tok.type in (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT):
            starts_line = True
        elif tok.type not in (tokenize.COMMENT, tokenize.ENCODING):
            starts_line = False
    return spans


def comment_columns(text: str) -> dict[int, int]:
    """0-based line -> column of a comment that follows code on that line."""
    cols: dict[int, int] = {}
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return cols
    code_on_line: set[int] = set()
    for tok in tokens:
        if tok.type == tokenize.COMMENT:
            if tok.start[0] in code_on_line:
                cols[tok.start[0] - 1] = tok.start[1]
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            code_on_line.add(tok.start[0])
    return cols


def rewrap(text: str, suffix: str, touched: set[int]) -> str:
    """Re-wrap, from the long line to the end of its paragraph, the comment or docstring lines
    that the rewrite made longer than LINE_LENGTH (``touched``: 1-based line numbers)."""
    lines = text.split("\n")
    docs = docstring_lines(text) if suffix == ".py" else {}
    trailing = comment_columns(text) if suffix == ".py" else {}
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if len(line) <= LINE_LENGTH or (i + 1) not in touched:
            out.append(line)
            i += 1
            continue
        comment = re.match(r"[ \t]*(?:# |\* |// )", line)
        if i in docs:
            first, last = docs[i]
            indent = re.match(r"[ \t]*", lines[first]).group()
            prefix = line[: line.index('"""') + 3] if i == first else indent
            if i != first and not line.startswith(indent) or line[len(indent) :][:1].isspace():
                out.append(line)
                i += 1
                continue
            j = i + 1
            while (
                j <= last
                and lines[j].strip()
                and lines[j].strip() != '"""'
                and re.match(r"[ \t]*", lines[j]).group() == indent
                and not LIST_ITEM.match(lines[j].strip())
            ):
                j += 1
            body = " ".join([line[len(prefix) :], *(x.strip() for x in lines[i + 1 : j])])
            out.extend(fill(body, prefix, indent))
            i = j
        elif comment and (i not in trailing):
            prefix = comment.group()
            j = i + 1
            while (
                j < len(lines)
                and lines[j].startswith(prefix)
                and lines[j][len(prefix) :].strip()
                and not LIST_ITEM.match(lines[j][len(prefix) :])
            ):
                j += 1
            body = " ".join([line[len(prefix) :], *(x[len(prefix) :] for x in lines[i + 1 : j])])
            out.extend(fill(body, prefix, prefix))
            i = j
        elif i in trailing:
            col = trailing[i]
            code, note = line[:col].rstrip(), line[col:].lstrip("#").strip()
            indent = re.match(r"[ \t]*", line).group()
            out.extend(fill(note, indent + "# ", indent + "# "))
            out.append(code)
            i += 1
        else:
            out.append(line)
            i += 1
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only list; change no file")
    parser.add_argument(
        "--bare-sections",
        choices=("first", "all", "keep"),
        default="first",
        help="bare §n in files without a header: write out the first, every one, or none",
    )
    parser.add_argument(
        "--bare-labels",
        choices=("expand", "keep"),
        default="expand",
        help="bare G1..G14: write out as docs/engine-notes.md Gn, or leave them",
    )
    parser.add_argument(
        "--no-wrap",
        action="store_true",
        help="do not re-wrap comments and docstrings that the rewrite made too long",
    )
    args = parser.parse_args(argv)

    total = 0
    long_lines: list[str] = []
    unhandled: list[str] = []
    for path in text_files():
        rel = path.relative_to(ROOT).as_posix()
        old = path.read_text()
        new, changes = migrate(old, args.bare_sections, args.bare_labels)
        for c in changes:
            print(f"{rel}:{c.line}: [{c.rule}] {c.old!r} -> {c.new!r}")
        total += len(changes)
        if changes:
            old_lines = set(old.splitlines())
            if not args.no_wrap and path.suffix in (".py", ".c", ".h"):
                touched = {
                    n
                    for n, line in enumerate(new.splitlines(), 1)
                    if len(line) > LINE_LENGTH and line not in old_lines
                }
                if touched:
                    new = rewrap(new, path.suffix, touched)
                    done = "would re-wrap" if args.check else "re-wrapped"
                    print(f"{rel}: {done} the paragraphs of lines {sorted(touched)}")
            for n, line in enumerate(new.splitlines(), 1):
                if len(line) > LINE_LENGTH and line not in old_lines and not line.startswith("|"):
                    long_lines.append(f"{rel}:{n}: {len(line)} characters")
            if not args.check:
                path.write_text(new)
        for m in UNHANDLED.finditer(new):
            unhandled.append(f"{rel}:{line_of(new, m.start())}: {line_at(new, m.start()).strip()}")

    verb = "would change" if args.check else "changed"
    print(f"\n{total} citation(s) {verb}.")
    if long_lines:
        print(f"\nLines longer than {LINE_LENGTH} characters after the rewrite (re-wrap them):")
        print("\n".join(long_lines))
    if unhandled:
        print("\nReferences with no counterpart in docs/ (edit them by hand):")
        print("\n".join(unhandled))
    if args.check:
        return 1 if total or unhandled else 0
    return 2 if unhandled else 0


if __name__ == "__main__":
    sys.exit(main())
