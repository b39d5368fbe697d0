"""The public API and the documentation agree with the code.

* ``weightlab.edits`` exports every registered edit, and the catalogue
  (``weightlab.core.catalogue``) describes each one with the parameters, defaults
  and ranges the edit and the recipe parser really have.
* Every ```python block of README.md and docs/**/*.md runs without an exception in
  a temporary folder holding the demo model as ``model.keras`` and its held-out
  set as ``heldout.npz`` (a block right after ``<!-- not-run -->`` is skipped);
  every ```json block that is a recipe parses; every ``weightlab ...`` line of a
  ```bash block parses with the CLI's own argument parsers.
* The op table of docs/recipes.md is the one the catalogue generates, and the
  reference part of docs/cli.md the one docs/gen_cli.py generates from the
  command's own argument parsers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shlex
import shutil
from pathlib import Path

import pytest

import weightlab.edits
from weightlab.core.catalogue import CATALOGUE, PARAM_KINDS, help_text, markdown_table
from weightlab.core.edits import EDIT_TYPES, edit_from_dict
from weightlab.core.errors import RecipeError
from weightlab.core.recipe import parse_recipe
from weightlab.core.session import EditSession

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
NOT_RUN = "<!-- not-run -->"

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)


def _blocks(lang: str) -> list[tuple[str, str]]:
    """``(id, code)`` of every fenced block of ``lang`` in the docs, not-run ones left out."""
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in _FENCE.finditer(text):
            if m.group(1) != lang or text[: m.start()].rstrip().endswith(NOT_RUN):
                continue
            line = text.count("\n", 0, m.start()) + 1
            out.append((f"{doc.relative_to(ROOT).as_posix()}:{line}", m.group(2)))
    return out


def _ids(blocks):
    return [b[0] for b in blocks]


# -- the public API ---------------------------------------------------------------------


def test_every_registered_edit_is_exported_by_weightlab_edits():
    for op, cls in EDIT_TYPES.items():
        assert getattr(weightlab.edits, cls.__name__, None) is cls, f"{op}: {cls.__name__} not exported"
        assert cls.__name__ in weightlab.edits.__all__
    for name in weightlab.edits.__all__:
        assert hasattr(weightlab.edits, name), f"__all__ names missing {name}"


def test_readme_import_line_works():
    from weightlab.edits import Clip, PruneMagnitude, ZeroNeurons  # noqa: F401 - the README's own line


# -- the catalogue ----------------------------------------------------------------------


def test_catalogue_lists_every_edit_with_its_fields():
    assert list(CATALOGUE) and set(CATALOGUE) == set(EDIT_TYPES)
    for op, info in CATALOGUE.items():
        assert info.cls is EDIT_TYPES[op] and info.op == op
        assert info.label and info.group and info.meaning and info.target in ("tensors", "layer")
        fields = {f.name: f for f in dataclasses.fields(info.cls) if f.name != "target"}
        assert [p.name for p in info.params] == list(fields), op
        for p in info.params:
            f = fields[p.name]
            assert p.kind in PARAM_KINDS and p.help, f"{op}.{p.name} needs a kind and a help line"
            assert p.required == (f.default is dataclasses.MISSING)
            if not p.required:
                assert p.default == f.default
            if p.kind == "choice":
                assert p.choices and p.suggested in p.choices, f"{op}.{p.name}"


def _valid_step(info, param: str | None = None) -> dict:
    """A recipe step of ``info`` with every parameter at its suggested value (one of each alternative).

    Parameters that apply only with another's value (``ParamInfo.when``) are left out, except
    ``param``, whose condition is then met (reinit's ``stddev``: ``initializer`` random_normal).
    """
    step = {"op": info.op, "target": "x"}
    seen = set()
    for p in info.params:
        if p.alternative:
            if p.alternative in seen:
                continue
            seen.add(p.alternative)
        value = p.suggested
        if p.kind in ("indices", "index"):
            value = list(value) or [0]
        step[p.name] = value
    if param and info.param(param).when:
        other, values = info.param(param).when
        step[other] = values[0]
    for p in info.params:
        if p.when and p.name != param and step.get(p.when[0]) not in p.when[1]:
            step.pop(p.name, None)
    return step


@pytest.mark.parametrize("op", sorted(CATALOGUE))
def test_catalogue_suggestions_build_the_edit(op):
    edit = edit_from_dict(_valid_step(CATALOGUE[op]))
    assert type(edit) is CATALOGUE[op].cls


@pytest.mark.parametrize(
    ("op", "param"),
    [(op, p.name) for op, info in sorted(CATALOGUE.items()) for p in info.params if p.lo is not None],
)
def test_catalogue_ranges_are_the_recipe_parsers(op, param):
    info = CATALOGUE[op]
    p = info.param(param)
    step = _valid_step(info, param)
    for alt in info.params:  # give this parameter, not its alternative
        if alt.alternative and alt.alternative == p.alternative and alt.name != param:
            step.pop(alt.name, None)
    # The op's other bounded parameters go to the same end, so that a cross-check
    # such as clip_percentile's lower <= upper holds at either end.
    others = [q for q in info.params if q.name in step and q.name != param and q.lo is not None]
    for q in others:
        step[q.name] = q.lo
    step[param] = p.lo if p.kind != "int" else int(p.lo)
    edit_from_dict(step)
    step[param] = p.lo - 1
    with pytest.raises(RecipeError, match=param):
        edit_from_dict(step)
    if p.hi is not None and math.isfinite(p.hi):
        for q in others:
            step[q.name] = q.hi if q.hi is not None and math.isfinite(q.hi) else step[q.name]
        step[param] = p.hi if p.kind != "int" else int(p.hi)
        edit_from_dict(step)
        step[param] = p.hi + 1 if p.kind != "int" else int(p.hi) + 1
        with pytest.raises(RecipeError, match=param):
            edit_from_dict(step)


def test_catalogue_choices_are_the_recipe_parsers():
    for info in CATALOGUE.values():
        for p in info.params:
            if p.kind != "choice":
                continue
            step = _valid_step(info, p.name)
            for choice in p.choices:
                step[p.name] = choice
                assert edit_from_dict(step).params()[p.name] == choice
            step[p.name] = "no-such-choice"
            with pytest.raises(RecipeError):
                edit_from_dict(step)


def test_recipes_doc_op_table_is_generated_from_the_catalogue():
    text = (ROOT / "docs" / "recipes.md").read_text(encoding="utf-8")
    start = text.index("<!-- ops-table")
    table = text[text.index("-->\n", start) + 4 : text.index("<!-- /ops-table -->")]
    assert table == markdown_table(), "regenerate it: python -m weightlab.core.catalogue"


def _gen_cli():
    """docs/gen_cli.py as a module (it is a script beside the pages, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_cli", ROOT / "docs" / "gen_cli.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_doc_reference_is_generated_from_the_parsers():
    gen = _gen_cli()
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert gen.START in text and gen.END in text
    assert text == gen.page_with_reference(text), "regenerate it: python docs/gen_cli.py"


def test_cli_doc_reference_lists_every_command_and_option():
    """Every subcommand has a section, and every option a row that says what it does."""
    import argparse

    from weightlab.cli import SUBCOMMANDS, _gui_parser, _subcommand_parser

    reference = _gen_cli().reference()
    sub = next(a for a in _subcommand_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(SUBCOMMANDS)
    for name, parser in [("", _gui_parser()), *sub.choices.items()]:
        title = f"### weightlab {name}" if name else "### weightlab [PATH]"
        section = reference[reference.index(title + "\n") :]
        section = section[: section.find("\n### ", 1) if "\n### " in section[1:] else None]
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            if name and action.dest == "verbose":
                assert "takes `-v`, `--verbose`" in reference
                continue
            flag = action.option_strings[-1] if action.option_strings else action.dest.upper()
            rows = [r for r in section.splitlines() if r.startswith("| ") and f"`{flag}" in r.split(" | ")[0]]
            assert rows, f"weightlab {name}: {flag} missing"
            assert rows[0].split(" | ")[1].strip(), (
                f"weightlab {name}: {flag} says nothing (give it a help text)"
            )


def test_apply_help_lists_every_op(capsys):
    from weightlab.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["apply", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert help_text() in out
    for op, info in CATALOGUE.items():
        assert re.search(rf"^  {op} ", out, re.M) and info.meaning in out


# -- the documents' code blocks ---------------------------------------------------------

PYTHON = _blocks("python")
JSON = _blocks("json")
BASH = _blocks("bash")


def test_the_docs_have_code_blocks():
    assert PYTHON and JSON and BASH  # a broken extractor must not pass by finding nothing


@pytest.fixture
def demo_folder(tmp_path, monkeypatch, demo_paths):
    shutil.copyfile(demo_paths["keras"], tmp_path / "model.keras")
    shutil.copyfile(demo_paths["data"], tmp_path / "heldout.npz")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("block", PYTHON, ids=_ids(PYTHON))
def test_python_blocks_run(block, demo_folder):
    where, code = block
    namespace: dict = {"__name__": "__docs__"}
    try:
        exec(compile(code, where, "exec"), namespace)  # noqa: S102 - our own documentation
    finally:
        for value in namespace.values():
            if isinstance(value, EditSession):
                value.model.close()


@pytest.mark.parametrize("block", JSON, ids=_ids(JSON))
def test_json_recipe_blocks_parse(block):
    where, code = block
    data = json.loads(code)
    if isinstance(data, dict) and "edits" in data:
        edits = parse_recipe(data, where)
        assert len(edits) == len(data["edits"])


def _command_lines():
    out = []
    for where, code in BASH:
        # a line ending in a backslash goes on on the next one (the shell's continuation)
        for i, line in enumerate(code.replace("\\\n", " ").splitlines()):
            words = shlex.split(line, comments=True)
            if words and words[0] == "weightlab":
                out.append((f"{where}+{i}", words[1:]))
    return out


COMMANDS = _command_lines()


def _parses(words: list[str]) -> bool:
    """Whether ``weightlab WORDS`` parses (``[--opt]`` marks an optional part: parsed with it)."""
    from weightlab.cli import SUBCOMMANDS, _gui_parser, _subcommand_parser

    argv = [w for w in (w.strip("[]") for w in words) if w]
    parser = _subcommand_parser() if argv and argv[0] in SUBCOMMANDS else _gui_parser()
    try:
        parser.parse_args(argv)
    except SystemExit:  # argparse's way of saying "bad arguments"
        return False
    return True


@pytest.mark.parametrize("command", COMMANDS, ids=_ids(COMMANDS))
def test_documented_commands_parse(command):
    _, words = command
    assert _parses(words), f"weightlab {' '.join(words)}: does not parse"


def test_the_command_check_catches_a_wrong_flag(capsys):
    assert _parses(["inspect", "model.keras", "[--json]"])
    assert not _parses(["inspect", "model.keras", "--jsn"])
    assert not _parses(["apply", "model.keras", "recipe.json"])  # -o is required
    capsys.readouterr()  # argparse's usage lines
