"""The repository stands alone: no file in it reads or cites material outside it.

A user's clone has nothing beside it, so a test that reads a file from a folder beside the
repository fails there, and a comment or report citing a background file points at nothing. What the package
relies on lives in the repository (``docs/protocol.md``, ``tests/data/reference_landmarks.json``)
with its published source.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Each pattern is written so that its own source text does not match it, so this file is
# scanned like every other one.
CITATIONS = {
    "a path into the folder beside the repository": re.compile(r"\.\./shared\b"),
    "a background folder": re.compile(r"\bshared/(?:spec|reference-data|paper|hooks)\b|\bshared/style\.md\b"),
    "a spec document": re.compile(r"\bspec/[\w.-]+\.md\b"),
    "a background document by name": re.compile(
        r"\b(?:data-and-protocol|synthetic-faces|anchors|mgrr-net-notes)\.md\b"),
    "a path built from parts": re.compile(
        r"[\"']shared[\"']\s*[/,]\s*[\"'](?:spec|reference-data|paper)[\"']"),
}


def citations_in(text: str) -> list[tuple[int, str, str]]:
    """``(line number, kind, line)`` for every line of ``text`` that cites outside material."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for kind, pattern in CITATIONS.items():
            if pattern.search(line):
                found.append((number, kind, line.strip()))
    return found


def repository_files() -> list[Path]:
    """Tracked files plus new files git does not ignore (so a citation is caught before
    it is committed)."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode()
    return [REPO / name for name in listing.split("\0") if name and (REPO / name).is_file()]


def test_the_patterns_catch_each_kind_of_citation():
    # Built from pieces so that this file itself cites nothing.
    up, sp, bg = "../", "spec", "shared"
    planted = [
        f'REFERENCE = Path(__file__).parent / "{up}{bg}/reference-data/x.json"',
        f"The protocol (``{bg}/{sp}/architecture.md``)",
        f"see {bg}/paper/notes",
        f"Layouts (``{sp}/data-and-" "protocol.md``):",
        "(typed in from anch" "ors.md)",
        f'Path(__file__).parents[2] / "{bg}" / "reference-data" / "f.json"',
    ]
    for line in planted:
        assert citations_in(line), line
    # and ordinary text is not flagged
    for line in ("docs/protocol.md", "docs/architecture.md", "one shared 3x3 conv",
                 "a CPU shared with other jobs", "spec = GRAPHS[graph]"):
        assert not citations_in(line), line


def test_no_repository_file_reads_or_cites_outside_material():
    files = repository_files()
    assert REPO / "README.md" in files and Path(__file__).resolve() in files
    offenders = []
    for path in files:
        content = path.read_bytes()
        if b"\0" in content[:8192]:
            continue  # binary (images, checkpoints): nothing to cite
        text = content.decode("utf-8", errors="replace")
        for number, kind, line in citations_in(text):
            offenders.append(f"{path.relative_to(REPO)}:{number}: {kind}: {line[:120]}")
    assert not offenders, (
        "files that read or cite material outside the repository (cite a file inside it, e.g. "
        "docs/protocol.md, or the published source instead):\n" + "\n".join(offenders))
