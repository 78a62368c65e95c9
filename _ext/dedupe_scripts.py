"""Drop duplicate ``<script>`` entries from each page's script list.

Under Sphinx 7.4, sphinx-thebe's inline script that defines ``const THEBE_JS_URL`` is
emitted twice on every page (its de-duplication compares a missing filename with an empty
one), and the second copy throws "Identifier 'THEBE_JS_URL' has already been declared" in
the browser console. This extension removes repeated entries (same file or same inline
body, same attributes) on ``html-page-context``, keeping the first occurrence.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def _key(script: Any) -> tuple:
    filename = getattr(script, "filename", script)
    attributes = getattr(script, "attributes", {}) or {}
    return (
        str(filename or ""),
        tuple(sorted((str(k), str(v)) for k, v in attributes.items())),
    )


def dedupe_script_files(app: Sphinx, pagename: str, templatename: str,
                        context: dict, doctree: Any) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = _key(script)
        if key in seen:
            continue
        seen.add(key)
        unique.append(script)
    if len(unique) != len(scripts):
        scripts[:] = unique


def setup(app: Sphinx) -> dict[str, Any]:
    # Run late, after other extensions have added their page-specific scripts.
    app.connect("html-page-context", dedupe_script_files, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
