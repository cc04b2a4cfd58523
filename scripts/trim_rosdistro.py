"""Make test/data/rosdistro: the ros/rosdistro rule files cut down to the keys in rosdep/keys.yaml.

    python scripts/trim_rosdistro.py /path/to/rosdistro-checkout-or-git-dir

Each kept rule is copied verbatim from the commit named in rosdep/keys.yaml, so rosdep resolves
package.xml offline (test/install/test_install.py) exactly as it does against the full files, for
every distribution keys.yaml lists under ``distros``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
KEYS = REPO / "rosdep" / "keys.yaml"
OUT = REPO / "test" / "data" / "rosdistro"


def git_show(rosdistro: Path, commit: str, path: str) -> str:
    """One file of the rosdistro repository at ``commit``."""
    return subprocess.run(["git", "-C", str(rosdistro), "show", f"{commit}:{path}"],
                          check=True, capture_output=True, text=True).stdout


def top_level_blocks(text: str, indent: str = "") -> dict[str, str]:
    """Verbatim ``key:`` blocks at one indentation: key -> the block's lines."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines(keepends=True):
        body = line[len(indent):]
        if line.startswith(indent) and body[:1] not in (" ", "#", "\n", "") and ":" in body:
            current = blocks.setdefault(body.split(":", 1)[0].strip(), [])
        elif not line.startswith(indent + " "):
            current = None
        if current is not None:
            current.append(line)
    return {key: "".join(lines) for key, lines in blocks.items()}


def trimmed_rules(text: str, keys: list[str]) -> str:
    """python.yaml with only ``keys``' rules."""
    blocks = top_level_blocks(text)
    missing = sorted(set(keys) - set(blocks))
    if missing:
        sys.exit(f"trim_rosdistro: not defined in rosdep/python.yaml: {missing}")
    return "".join(blocks[k] for k in sorted(keys))


def trimmed_distribution(text: str, repositories: set[str], distro: str) -> str:
    """<distro>/distribution.yaml with only ``repositories`` (and its header)."""
    head, _, body = text.partition("\nrepositories:\n")
    lines = body.splitlines(keepends=True)
    end = next((i for i, line in enumerate(lines) if line[:1] not in (" ", "\n")), len(lines))
    repos_text, tail = "".join(lines[:end]), "".join(lines[end:])  # top-level keys after it stay
    blocks = top_level_blocks(repos_text, indent="  ")
    missing = sorted(repositories - set(blocks))
    if missing:
        sys.exit(f"trim_rosdistro: not in {distro}/distribution.yaml: {missing}")
    kept = "".join(blocks[r] for r in sorted(repositories))
    return f"{head}\nrepositories:\n{kept}{tail}"


def main(rosdistro: Path) -> None:
    keys = yaml.safe_load(KEYS.read_text())
    commit = keys["rosdistro_commit"]
    (OUT / "rosdep").mkdir(parents=True, exist_ok=True)
    note = f"# Trimmed from ros/rosdistro {commit} by scripts/trim_rosdistro.py\n"
    rules = trimmed_rules(git_show(rosdistro, commit, "rosdep/python.yaml"), list(keys["system"]))
    (OUT / "rosdep" / "python.yaml").write_text(note + rules)
    index: dict[str, object] = {"type": "index", "version": 4, "distributions": {}}
    for distro in keys["distros"]:
        dist = trimmed_distribution(git_show(rosdistro, commit, f"{distro}/distribution.yaml"),
                                    set(keys["ros_packages"].values()), distro)
        directive, _, rest = dist.partition("\n")  # "%YAML 1.1" must stay first
        (OUT / distro).mkdir(parents=True, exist_ok=True)
        (OUT / distro / "distribution.yaml").write_text(f"{directive}\n{note}{rest}")
        index["distributions"][distro] = {  # type: ignore[index]
            "distribution": [f"{distro}/distribution.yaml"], "distribution_status": "active",
            "distribution_type": "ros2", "python_version": 3}
    (OUT / "index-v4.yaml").write_text("%YAML 1.1\n" + note + "---\n" + yaml.safe_dump(index))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
