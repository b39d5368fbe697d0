"""Hostile recipes: bounded work and one RecipeError naming the file, never a traceback."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

from weightlab import cli
from weightlab.core import recipe as recipe_module
from weightlab.core.edits import MAX_NAME_LENGTH, Scale
from weightlab.core.errors import RecipeError
from weightlab.core.model import ModelFile
from weightlab.core.recipe import (
    MAX_INTEGER_DIGITS,
    MAX_RECIPE_BYTES,
    MAX_RECIPE_DEPTH,
    MAX_RECIPE_STEPS,
    load_recipe,
    parse_recipe,
)
from weightlab.core.safejson import json_depth
from weightlab.core.session import EditSession

STEP = {"op": "scale", "target": "dense/kernel", "factor": 0.5}


def write(path, text: str | bytes):
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


def refused(path, fragment: str, **limits) -> str:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, **limits)
    msg = str(info.value)
    assert str(path) in msg and fragment in msg, msg
    return msg


def test_deeply_nested_recipe_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    n = 100_000
    p = write(tmp_path / "deep.json", '{"version": 1, "edits": ' + "[" * n + "]" * n + "}")

    def parse(*args, **kwargs):
        raise AssertionError("the recursive JSON parser ran on a 100,000-deep recipe")

    # refused by the linear depth scan (json_depth), never by recursing into it
    monkeypatch.setattr(recipe_module.json, "loads", parse)
    msg = refused(p, "nested")
    assert f"{n + 1} levels" in msg and f"limit is {MAX_RECIPE_DEPTH}" in msg


def test_nesting_limit_is_exact_and_ignores_brackets_in_strings(tmp_path):
    def recipe(depth_of_comment: int, target: str = "dense/kernel") -> str:
        comment = "[" * depth_of_comment + "]" * depth_of_comment
        return json.dumps({"version": 1, "comment": json.loads(comment), "edits": [{**STEP, "target": target}]})

    ok = write(tmp_path / "ok.json", recipe(MAX_RECIPE_DEPTH - 1))  # the recipe object is one level
    assert load_recipe(ok) == [Scale(target="dense/kernel", factor=0.5)]
    refused(write(tmp_path / "deep.json", recipe(MAX_RECIPE_DEPTH)), f"nested {MAX_RECIPE_DEPTH + 1} levels")
    brackets = '[{"\\"[' * 500
    edits = load_recipe(write(tmp_path / "s.json", recipe(1, brackets)))
    assert edits[0].target == brackets
    assert json_depth('{"a": "]]]]", "b": [[1], {"c": "[[[["}]}') == 3
    assert json_depth("") == 0


def test_huge_integer_is_refused(tmp_path):
    digits = "9" * 5000
    for field in ('"factor": ' + digits, '"factor": -' + digits, '"factor": 1, "seed": ' + digits):
        text = '{"version": 1, "edits": [{"op": "scale", "target": "k", ' + field + "}]}"
        p = write(tmp_path / "big.json", text)
        assert "5000 digits" in refused(p, f"limit is {MAX_INTEGER_DIGITS}")
    # At the limit an integer is read (and is a float like any other factor).
    p = write(tmp_path / "ok.json", json.dumps({"version": 1, "edits": [{**STEP, "factor": 10 ** (MAX_INTEGER_DIGITS - 1)}]}))
    assert load_recipe(p)[0].factor == 1e99


@pytest.mark.parametrize("value", [10**400, 10**5000, -(10**5000)], ids=["400", "5000", "-5000"])
def test_integers_beyond_float_range_from_python_are_refused(value):
    with pytest.raises(RecipeError, match=r"step 1 \(scale\): parameter 'factor' must be a finite number; got an integer"):
        parse_recipe({"version": 1, "edits": [{**STEP, "factor": value}]})


def test_step_limit(tmp_path):
    with pytest.raises(RecipeError, match=f"{MAX_RECIPE_STEPS + 1} edits; the limit is {MAX_RECIPE_STEPS}"):
        parse_recipe({"version": 1, "edits": [STEP] * (MAX_RECIPE_STEPS + 1)})
    assert len(parse_recipe({"version": 1, "edits": [STEP] * 3}, max_steps=3)) == 3
    p = write(tmp_path / "r.json", json.dumps({"version": 1, "edits": [STEP] * 4}))
    refused(p, "4 edits; the limit is 3", max_steps=3)


def test_size_limit_is_checked_before_reading(tmp_path):
    p = tmp_path / "huge.json"
    with p.open("wb") as f:  # sparse: no 16 MiB written, none read
        f.truncate(MAX_RECIPE_BYTES + 1)
    refused(p, f"{MAX_RECIPE_BYTES + 1} bytes; the limit is {MAX_RECIPE_BYTES}")
    small = write(tmp_path / "r.json", json.dumps({"version": 1, "edits": [STEP]}))
    refused(small, "the limit is 10", max_bytes=10)


def test_special_files_are_not_read(tmp_path):
    refused(tmp_path, "not a regular file")
    refused(tmp_path / "missing.json", "no such recipe file")
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo.json"
        os.mkfifo(fifo)  # opening it for reading would block forever
        refused(fifo, "not a regular file")


def test_byte_order_mark_is_accepted(tmp_path):
    p = write(tmp_path / "bom.json", b"\xef\xbb\xbf" + json.dumps({"version": 1, "edits": [STEP]}).encode())
    assert load_recipe(p) == [Scale(target="dense/kernel", factor=0.5)]


@pytest.mark.parametrize(
    "name, text, fragment",
    [
        ("deep.json", '{"version": 1, "edits": ' + "[" * 50_000 + "]" * 50_000 + "}", "nested 50001 levels"),
        ("digits.json", '{"version": 1, "edits": [{"op": "scale", "target": "x", "factor": ' + "1" * 5000 + "}]}", "5000 digits"),
    ],
    ids=["deep", "digits"],
)
def test_cli_reports_one_line_and_writes_nothing(demo_paths, tmp_path, capfd, name, text, fragment):
    recipe = write(tmp_path / name, text)
    out = tmp_path / "out.h5"
    status = cli.main(["apply", str(demo_paths["h5"]), str(recipe), "-o", str(out)])
    err = capfd.readouterr().err
    assert status == 2, err
    assert err.count("\n") == 1 and str(recipe) in err and fragment in err and "Traceback" not in err
    assert not out.exists() and sorted(os.listdir(tmp_path)) == [name]
    assert sys.getrecursionlimit() < 50_000  # the refusal did not depend on raising it


def test_long_names_and_lists_give_short_messages():
    with pytest.raises(RecipeError, match=f"names of at most {MAX_NAME_LENGTH} characters") as info:
        parse_recipe({"version": 1, "edits": [{**STEP, "target": ["dense", "k" * 100_000]}]})
    assert len(str(info.value)) < 300
    kernel = np.zeros((3, 4), np.float32)
    s = EditSession(ModelFile.from_arrays({"dense/kernel": kernel}, "m.h5", format="h5", classes={"dense": "Dense"}))
    with pytest.raises(RecipeError, match=r"has 4 output neurons \(0..3\); got \[4, 5, 6, 7, 8, 9, 10, 11, \.\.\.\]") as info:
        s.apply_recipe({"version": 1, "edits": [{"op": "zero_neurons", "target": "dense", "neurons": list(range(100_000))}]})
    assert len(str(info.value)) < 300 and s.position == 0
