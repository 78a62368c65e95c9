#!/usr/bin/env python3
"""The project's two commands, needing nothing but Python 3 and pip:

    python3 tasks.py book    build the book (fresh execution, warnings are errors)
    python3 tasks.py test    library tests, then the book build, then the browser checks

Both create ``.venv`` on first use and install ``requirements.txt`` into it (again only
when that file changes). Standard library only: this file runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def run(*cmd, **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kw)


def ensure_env() -> None:
    """Create the virtual environment and install the requirements when they changed."""
    if not PY.exists():
        run(sys.executable, "-m", "venv", VENV)
    stamp = VENV / ".requirements.sha256"
    want = hashlib.sha256(
        (ROOT / "requirements.txt").read_bytes() + (ROOT / "pyproject.toml").read_bytes()
    ).hexdigest()
    if not stamp.exists() or stamp.read_text() != want:
        run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
        run(PY, "-m", "pip", "install", "--quiet", "-r", "requirements.txt")
        stamp.write_text(want)


def book() -> None:
    """Build the HTML book from a fresh execution cache; any warning or failing cell fails."""
    shutil.rmtree(ROOT / "_build", ignore_errors=True)
    t0 = time.perf_counter()
    run(BIN / "jupyter-book", "build", ".", "-W", "-n", "--keep-going")
    print(f"book built in {time.perf_counter() - t0:.0f} s", flush=True)


def test() -> None:
    try:
        run(PY, "-m", "pytest", "tests", "-q", "-m", "not browser")
    except subprocess.CalledProcessError as exc:
        if exc.returncode != 5:  # 5: no test selected (no library tests yet); go on
            raise
        print("no library tests were selected", flush=True)
    book()
    run(PY, "-m", "pytest", "tests", "-q", "-m", "browser")


def main(argv: list[str]) -> int:
    tasks = {"book": book, "test": test}
    if len(argv) != 1 or argv[0] not in tasks:
        print(f"usage: python3 tasks.py {{{','.join(tasks)}}}", file=sys.stderr)
        return 2
    ensure_env()
    try:
        tasks[argv[0]]()
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
