"""No code execution from files or topics: the package never unpickles, evals or execs, and
loads torch checkpoints with weights_only=True and YAML with the safe loader."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "seg_ros"

RULES = (
    (re.compile(r"\bpickle\b|\bcPickle\b|\bdill\b|\bjoblib\b"), "pickle"),
    (re.compile(r"(?<![\w.])eval\s*\("), "eval("),
    (re.compile(r"(?<![\w.])exec\s*\("), "exec("),
    (re.compile(r"\bmarshal\.loads?\b|\bshelve\b"), "marshal/shelve"),
    (re.compile(r"\bnp\.load\s*\((?![^)]*allow_pickle\s*=\s*False)"), "np.load without "
     "allow_pickle=False"),
)


def _calls(text: str, name: str) -> list[str]:
    """The full argument text of every ``name(`` call (balanced parentheses)."""
    out = []
    for m in re.finditer(re.escape(name) + r"\s*\(", text):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        out.append(text[m.start():i])
    return out


def _code_only(text: str) -> str:
    """``text`` with every string literal emptied and comments dropped (line numbers kept)."""
    toks = []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            continue
        if tok.type == tokenize.STRING or tok.type in _FSTRING_PARTS:
            tok = tok._replace(string='""' if tok.type == tokenize.STRING else "")
        toks.append(tok)
    return tokenize.untokenize(toks)


_FSTRING_PARTS = {getattr(tokenize, n) for n in ("FSTRING_MIDDLE",) if hasattr(tokenize, n)}


def _offences(root: Path) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        code = _code_only(path.read_text())
        rel = path.relative_to(root.parent)
        for rx, what in RULES:
            for m in rx.finditer(code):
                bad.append(f"{rel}:{code[:m.start()].count(chr(10)) + 1}: {what}")
        for call in _calls(code, "torch.load"):
            if not re.search(r"weights_only\s*=\s*True", call):
                bad.append(f"{rel}: torch.load without weights_only=True: {call[:80]}")
        for call in _calls(code, "yaml.load"):
            if "SafeLoader" not in call and "CSafeLoader" not in call:
                bad.append(f"{rel}: yaml.load without SafeLoader: {call[:80]}")
        for call in _calls(code, "yaml.unsafe_load") + _calls(code, "yaml.full_load"):
            bad.append(f"{rel}: {call[:40]}")
    return bad


def test_package_has_no_code_execution_from_data() -> None:
    assert _offences(PACKAGE) == []


def test_the_checker_catches_offences(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "bad.py").write_text(
        "import pickle\nx = eval('1')\nexec('y=2')\nimport torch\nm = torch.load(p)\n"
        "n = torch.load(p, weights_only=False)\nimport yaml\nd = yaml.load(s)\n"
        "ok = torch.load(p, map_location='cpu',\n  weights_only=True)\n"
        "ok2 = yaml.load(s, Loader=yaml.SafeLoader)\nz = model.eval()\n")
    found = _offences(pkg)
    assert len(found) == 6, found
    assert not any("ok" in f for f in found)
