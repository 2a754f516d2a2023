"""The README's settings reference cannot drift from ``conf.DEFAULTS``: one heading per setting,
none for a setting that does not exist, and each stated default equal to the real one."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from django_webhooks.conf import DEFAULTS

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = re.compile(r"^#### `([A-Z0-9_]+)`\n(.*?)(?=^#|\Z)", re.MULTILINE | re.DOTALL)
STATED_DEFAULT = re.compile(r"default `([^`]*)`")


def documented() -> dict[str, str]:
    return {match.group(1): match.group(2) for match in SECTION.finditer(README.read_text())}


def test_every_setting_has_one_heading_and_every_heading_is_a_setting():
    assert sorted(documented()) == sorted(DEFAULTS)


def test_each_documented_default_is_the_real_default():
    wrong = {}
    for name, text in documented().items():
        stated = STATED_DEFAULT.search(text)
        assert stated, f"README's {name} section states no default (`default `...``)"
        value = ast.literal_eval(stated.group(1))
        if value != DEFAULTS[name]:
            wrong[name] = (value, DEFAULTS[name])
    assert wrong == {}


def test_the_reader_catches_a_wrong_default():
    sections = dict(SECTION.findall("#### `TIMEOUT`\nseconds, default `99.0`. Deadline.\n"))
    assert ast.literal_eval(STATED_DEFAULT.search(sections["TIMEOUT"]).group(1)) != DEFAULTS["TIMEOUT"]
