"""The repository holds every source file: a .gitignore pattern that swallows a package folder (`build/` once hid
src/greenrt/build/) would pass every local run and break every fresh clone."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_no_source_or_test_file_is_ignored_by_git():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "--others", "--ignored", "--exclude-standard", "src", "tests",
                          "scripts", "bench"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    ignored = [p for p in out.splitlines() if p.endswith((".py", ".sh", ".txt", ".json", ".md"))
               and "__pycache__" not in p and ".egg-info" not in p]
    assert ignored == [], f"source files git ignores (fix .gitignore): {ignored}"
