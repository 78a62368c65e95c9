"""Number the book's equations with the paper's equation numbers.

A displayed equation labelled ``eq-<n>`` (optionally ``eq-<n>-<suffix>``, for a restatement
on another page) is numbered ``(n)``, the number it has in Ptaszyński, Chudak & Esposito
(2025), both where it is displayed and in every ``{eq}`` reference to it. Other labelled
equations keep Sphinx's per-page numbering. Needs ``math_numfig: false`` (with
``math_numfig`` Sphinx renumbers equations through the figure-numbering machinery and
ignores the numbers set here).
"""

from __future__ import annotations

import re
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx

_LABEL = re.compile(r"^eq-(\d+)(?:-[\w-]+)?$")


def paper_number(label: str) -> int | None:
    m = _LABEL.match(label or "")
    return int(m.group(1)) if m else None


def renumber(app: Sphinx, doctree: nodes.document) -> None:
    domain = app.env.get_domain("math")
    docname = app.env.docname
    for node in doctree.findall(nodes.math_block):
        label = node.get("label")
        n = paper_number(label) if label else None
        if n is None:
            continue
        node["number"] = n
        domain.equations[label] = (docname, n)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("doctree-read", renumber)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
