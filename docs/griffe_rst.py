"""A griffe extension for the API reference: the code's reST markup read as Markdown.

WeightLab's docstrings are numpydoc, written for Sphinx as well as for
``help()``: they name other objects with reST roles (``:func:`open```,
``:class:`~weightlab.core.model.ModelFile```, ``:meth:`text <target>```) and
introduce examples with ``::``. mkdocstrings renders docstrings as Markdown, where
those would show as raw text; this extension (``mkdocs.yml``, the python
handler's ``extensions``) rewrites them before rendering:

* a role becomes inline code of the name a reader sees (``~a.b.C`` -> ``C``,
  ``text <target>`` -> ``text``);
* a paragraph ending in ``::`` ends in ``:``, and the indented block after it
  becomes a fenced code block.

The source is not changed; only the site's copy of each docstring.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|meth|class|mod|data|attr|exc|obj|const|ref|term):`([^`]+)`")


def _role(match: re.Match[str]) -> str:
    text = match.group(1).strip()
    named = re.match(r"^(.*?)\s*<([^>]+)>$", text, re.S)
    if named:
        text = named.group(1)
    elif text.startswith("~"):
        text = text[1:].rsplit(".", 1)[-1]
    return f"`{text}`"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _literal_blocks(text: str) -> str:
    """``paragraph::`` + indented block -> ``paragraph:`` + a fenced block (as reST shows it)."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.rstrip().endswith("::"):
            out.append(line)
            i += 1
            continue
        base = _indent(line)
        head = line.rstrip()[:-2].rstrip()
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        block_end = j
        while block_end < len(lines) and (not lines[block_end].strip() or _indent(lines[block_end]) > base):
            block_end += 1
        block = lines[j:block_end]
        while block and not block[-1].strip():
            block.pop()
        if not block:  # a "::" with nothing indented after it: leave it
            out.append(line)
            i += 1
            continue
        if head.strip():
            out.append(head + ":")
        cut = min(_indent(b) for b in block if b.strip())
        pad = " " * base
        out += ["", pad + "```python", *(pad + b[cut:] if b.strip() else "" for b in block), pad + "```", ""]
        i = block_end
    return "\n".join(out)


def markdown(docstring: str) -> str:
    """``docstring`` with its reST roles and literal blocks as Markdown."""
    return _literal_blocks(_ROLE.sub(_role, docstring))


class RstToMarkdown(griffe.Extension):
    """Rewrite every loaded object's docstring with :func:`markdown`."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
