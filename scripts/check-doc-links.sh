#!/usr/bin/env bash
# Checks that every relative Markdown link in README.md, BENCHMARKS.md and docs/**/*.md points to
# a file or directory that exists, relative to the file that contains it. Links with a scheme
# (http:, https:, mailto:, ...) and links to an anchor in the same file are skipped; for
# `path#anchor`, only the path is checked. Links inside code blocks and code spans are not links.
#
#   scripts/check-doc-links.sh          prints each broken link as file:line and exits 1 if any
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

exec python3 - "$@" <<'PY'
import glob
import os
import re
import sys
from urllib.parse import unquote

files = [f for f in ["README.md", "BENCHMARKS.md"] if os.path.isfile(f)]
files += sorted(glob.glob("docs/**/*.md", recursive=True))

# [text](target) and ![alt](target), the text allowing one level of nested brackets; the target
# is <...> or runs to the first whitespace or closing parenthesis, optionally followed by a title.
INLINE = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s()]+(?:\([^\s()]*\)[^\s()]*)*)"
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"
)
# [label]: target (reference definitions).
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
CODE_SPAN = re.compile(r"(`+)(?:.+?)\1")
FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")

broken = 0
checked = 0
for path in files:
    base = os.path.dirname(path)
    fence = None
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            m = FENCE.match(line)
            if m:
                mark = m.group(1)
                if fence is None:
                    fence = mark
                elif mark[0] == fence[0] and len(mark) >= len(fence):
                    fence = None
                continue
            if fence is not None:
                continue
            spans = [(c.start(), c.end()) for c in CODE_SPAN.finditer(line)]
            targets = []
            for link in INLINE.finditer(line):
                if any(a <= link.start() < b for a, b in spans):
                    continue
                targets.append(link.group(1))
            ref = REFERENCE.match(line)
            if ref:
                targets.append(ref.group(1))
            for target in targets:
                target = target.strip("<>")
                if not target or target.startswith("#") or SCHEME.match(target):
                    continue
                file_part = unquote(target.split("#", 1)[0].split("?", 1)[0])
                if not file_part:
                    continue
                checked += 1
                if file_part.startswith("/"):
                    resolved = os.path.join(".", file_part.lstrip("/"))
                else:
                    resolved = os.path.join(base, file_part)
                if not os.path.exists(resolved):
                    broken += 1
                    print(f"{path}:{number}: broken link: {target} "
                          f"({os.path.normpath(resolved)} does not exist)")

if broken:
    print(f"{broken} broken link(s) of {checked} checked in {len(files)} files", file=sys.stderr)
    sys.exit(1)
print(f"documentation links: {checked} checked in {len(files)} files, none broken")
PY
