#!/usr/bin/env python3
"""Checks that every C++ code block in README.md and docs/*.md is compiled.

A fenced block tagged ```cpp passes when its lines (each stripped of leading
and trailing whitespace, blank lines ignored) appear as consecutive lines of one
of the compiled sources: examples/*.cpp, tests/*.cpp and docs/snippets/*.cpp,
all of which meson builds. Lines that are only "..." mark an elided part and
split the block into pieces, each of which must be found in the same file, in
order. A block whose first line is a comment naming a compiled source, e.g.
"// examples/quickstart.cpp", must be found in that file. Blocks tagged
anything else (```text, ```sh, ```cmake, ...) are not
checked, except build files: a block tagged ```cmake or ```meson must be
found, the same way, in the CMake or meson consumer project CI builds
(tests/consumers/cmake/CMakeLists.txt, tests/consumers/meson/meson.build),
and a ```sh block whose first line is a comment naming a script CI runs, e.g.
"# tests/consumers/prefix/install_and_build.sh", must be found in that script.

docs/guarantees.md names the test behind each promise: every `Suite.Name` it
quotes must be a TEST or TEST_F of tests/*.cpp.

usage: check_docs.py SOURCE_ROOT
Prints each block that is not found and exits 1 if there is any.
"""
import pathlib
import re
import sys

FENCE = re.compile(r"^```(\S*)\s*$")
TEST_DEF = re.compile(r"^TEST(?:_F)?\((\w+),\s*(\w+)\)", re.M)
TEST_REF = re.compile(r"`((?:[A-Z]\w*Test|Faults|Lifecycle|Codec)\.[A-Z]\w+)`")
SOURCE_NAME = re.compile(r"^// ((?:examples|tests|docs/snippets)/\S+\.cpp)$")
SCRIPT_NAME = re.compile(r"^# (tests/\S+\.sh)$")


def code_blocks(path):
    """Yields (first line number, language, lines) for each fenced block."""
    lang, start, body = None, 0, []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = FENCE.match(line.strip())
        if match and lang is None:
            lang, start, body = match.group(1) or "text", number + 1, []
        elif match and line.strip() == "```":
            yield start, lang, body
            lang = None
        elif lang is not None:
            body.append(line)


def normalise(lines):
    return [line.strip() for line in lines if line.strip()]


def pieces(lines):
    """Splits a block at lines that are only '...' (or '// ...')."""
    out, current = [], []
    for line in normalise(lines):
        if line in ("...", "// ..."):
            if current:
                out.append(current)
            current = []
        else:
            current.append(line)
    if current:
        out.append(current)
    return out


def find_in_order(haystack, needles):
    position = 0
    for needle in needles:
        n = len(needle)
        for i in range(position, len(haystack) - n + 1):
            if haystack[i:i + n] == needle:
                position = i + n
                break
        else:
            return False
    return True


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    sources = {}
    for pattern in ("examples/*.cpp", "tests/*.cpp", "docs/snippets/*.cpp"):
        for path in sorted(root.glob(pattern)):
            sources[path] = normalise(path.read_text().splitlines())
    pages = [root / "README.md"] + sorted((root / "docs").glob("*.md"))
    checked, missing = 0, []
    build_files = {
        "cmake": root / "tests/consumers/cmake/CMakeLists.txt",
        "meson": root / "tests/consumers/meson/meson.build",
    }
    for page in pages:
        for start, lang, body in code_blocks(page):
            if lang in build_files:
                checked += 1
                wanted = build_files[lang]
                text = normalise(wanted.read_text().splitlines()) if wanted.exists() else []
                if not find_in_order(text, pieces(body)):
                    missing.append((page.relative_to(root), start, body))
                continue
            script = SCRIPT_NAME.match(normalise(body)[0]) if lang == "sh" and body else None
            if script:
                checked += 1
                wanted = root / script.group(1)
                text = normalise(wanted.read_text().splitlines()) if wanted.exists() else []
                rest = body[body.index(next(l for l in body if l.strip())) + 1:]
                if not find_in_order(text, pieces(rest)):
                    missing.append((page.relative_to(root), start, body))
                continue
            if lang not in ("cpp", "c++"):
                continue
            checked += 1
            candidates = sources
            lines = normalise(body)
            named = SOURCE_NAME.match(lines[0]) if lines else None
            if named:
                wanted = root / named.group(1)
                candidates = {wanted: sources.get(wanted, [])}
                body = body[body.index(next(l for l in body if l.strip())) + 1:]
            parts = pieces(body)
            if not parts:
                continue
            if not any(find_in_order(lines, parts) for lines in candidates.values()):
                missing.append((page.relative_to(root), start, body))
    test_names = set()
    for path in sorted(root.glob("tests/*.cpp")):
        for m in TEST_DEF.finditer(path.read_text()):
            test_names.add(f"{m.group(1)}.{m.group(2)}")
    guarantees = root / "docs/guarantees.md"
    unknown = []
    if guarantees.exists():
        for m in TEST_REF.finditer(guarantees.read_text()):
            if m.group(1) not in test_names:
                unknown.append(m.group(1))
    for name in unknown:
        print(f"docs/guarantees.md: names {name}, which is no test in tests/*.cpp")
    for page, start, body in missing:
        print(f"{page}:{start}: block not found in any compiled source:")
        for line in body[:8]:
            print(f"    {line}")
        if len(body) > 8:
            print("    ...")
    print(f"{checked} C++ and build-file blocks checked, {len(missing)} not taken from a compiled file")
    return 1 if missing or unknown else 0


if __name__ == "__main__":
    sys.exit(main())
