#!/usr/bin/env python3
"""Count individual test cases from a meson test run.

Usage:
    count_junit.py clean BUILD_DIR
        Remove the logs of a previous run (testlog.junit.xml, testlog.json and
        the per-executable GoogleTest XML files), so that an executable that
        crashes before writing its XML can never be credited with the results
        of an older run.

    count_junit.py count BUILD_DIR [--meson-status N]
        Read BUILD_DIR/meson-logs/testlog.junit.xml and testlog.json and print
        "PASSED FAILED SKIPPED" on stdout (details go to stderr).

Counting rules:
  * every <testcase> is one case; a <failure> or <error> child makes it
    failed, a <skipped> child (or gtest's status="notrun") makes it skipped;
  * every meson test whose result is not OK (crash, timeout, sanitizer report
    at exit, ...) contributes at least one failed case, even when its cases are
    missing from the junit file or all look passed;
  * if meson itself exited non-zero but nothing was counted as failed, one
    failed case is recorded so that the run can never read as a pass.
"""

import argparse
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

# characters XML 1.0 does not allow (everything below 0x20 but tab, LF, CR)
INVALID_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")

# meson results that are not failures
GOOD_RESULTS = {"OK", "EXPECTEDFAIL", "SKIP"}


def log(msg):
    print(msg, file=sys.stderr)


def clean(build_dir):
    logs = os.path.join(build_dir, "meson-logs")
    for name in ("testlog.junit.xml", "testlog.json"):
        path = os.path.join(logs, name)
        if os.path.exists(path):
            os.remove(path)
    # meson runs gtest executables with --gtest_output=xml:<workdir or build dir>/<name>.xml
    intro = os.path.join(build_dir, "meson-info", "intro-tests.json")
    try:
        with open(intro, encoding="utf-8") as f:
            tests = json.load(f)
    except (OSError, ValueError):
        return
    for test in tests:
        if test.get("protocol") != "gtest":
            continue
        xml = os.path.join(test.get("workdir") or build_dir, test["name"] + ".xml")
        if os.path.exists(xml):
            os.remove(xml)


class Case:
    def __init__(self, suite, name, status):
        self.suite = suite  # junit suite name, e.g. "inorder.codec_test.CodecTest"
        self.name = name
        self.status = status  # "passed", "failed" or "skipped"

    def label(self):
        return f"{self.suite}.{self.name}"

    def belongs_to(self, test_name):
        """Whether this case was produced by the meson test called test_name.

        meson names gtest suites "<project>.<test>.<gtest suite>", multi-result
        suites "<project>.<test>", and records an executable without parsed
        results as a case named "<test>" in the suite "<project>".
        """
        rest = self.suite.split(".", 1)[1] if "." in self.suite else ""
        return rest == test_name or rest.startswith(test_name + ".") or (
            "." not in self.suite and self.name == test_name)

    def is_executable_case(self, test_name):
        return "." not in self.suite and self.name == test_name


def classify(testcase):
    if testcase.find("failure") is not None or testcase.find("error") is not None:
        return "failed"
    if testcase.find("skipped") is not None or testcase.get("status") == "notrun":
        return "skipped"
    return "passed"


def read_cases(junit_path):
    """Return the list of cases, or None if the file is unreadable."""
    try:
        with open(junit_path, "rb") as f:
            raw = f.read().decode("utf-8", errors="replace")
        # meson copies a failed test's output into the file as it is; terminal
        # colour codes (ESC) and other control characters are not allowed in
        # XML 1.0 and would make the whole file unreadable.
        root = ET.fromstring(INVALID_XML_CHARS.sub("?", raw))
    except (OSError, ET.ParseError) as e:
        log(f"count_junit: cannot read {junit_path}: {e}")
        return None
    cases = []
    for suite in root.iter("testsuite"):
        suite_name = suite.get("name", "")
        for testcase in suite.findall("testcase"):
            cases.append(Case(suite_name, testcase.get("name", "?"), classify(testcase)))
    return cases


def read_meson_results(json_path):
    """Return [(test name, result)] from meson's testlog.json (one object per line)."""
    results = []
    try:
        with open(json_path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    log(f"count_junit: skipping malformed line in {json_path}")
                    continue
                # "name" may be "project:suite / test"; the junit file uses the bare test name
                name = str(entry.get("name", "?")).rsplit(" / ", 1)[-1]
                results.append((name, str(entry.get("result", "?"))))
    except OSError:
        pass
    return results


def count(build_dir, meson_status):
    logs = os.path.join(build_dir, "meson-logs")
    junit_path = os.path.join(logs, "testlog.junit.xml")
    json_path = os.path.join(logs, "testlog.json")

    cases = []
    extra_failed = 0
    if os.path.exists(junit_path):
        cases = read_cases(junit_path)
        if cases is None:
            cases = []
            extra_failed += 1

    # Cross-check with meson's per-executable verdicts.
    for test_name, result in read_meson_results(json_path):
        if result in GOOD_RESULTS:
            continue
        own = [c for c in cases if c.belongs_to(test_name)]
        if any(c.status == "failed" for c in own):
            continue
        exe_case = next((c for c in own if c.is_executable_case(test_name)), None)
        if exe_case is not None:
            # meson recorded the executable as one case but (e.g. for a timeout)
            # without a failure element: turn it into a failure.
            exe_case.status = "failed"
        else:
            extra_failed += 1
        log(f"count_junit: {test_name}: meson result {result}; counted as a failed case")

    passed = sum(1 for c in cases if c.status == "passed")
    failed = sum(1 for c in cases if c.status == "failed") + extra_failed
    skipped = sum(1 for c in cases if c.status == "skipped")

    for c in cases:
        if c.status == "failed":
            log(f"count_junit: FAILED {c.label()}")

    if meson_status != 0 and failed == 0:
        log(f"count_junit: meson test exited with status {meson_status}; counted as a failed case")
        failed = 1

    print(passed, failed, skipped)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_clean = sub.add_parser("clean", help="remove logs of a previous test run")
    p_clean.add_argument("build_dir")
    p_count = sub.add_parser("count", help="print 'PASSED FAILED SKIPPED'")
    p_count.add_argument("build_dir")
    p_count.add_argument("--meson-status", type=int, default=0,
                         help="exit status of 'meson test'")
    args = parser.parse_args()
    if args.command == "clean":
        clean(args.build_dir)
    else:
        count(args.build_dir, args.meson_status)


if __name__ == "__main__":
    main()
