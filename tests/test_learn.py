"""The learner's path (docs/learn/, issue 17): every chapter runs in short mode, the exercise checker
passes on the shipped solutions (the framework's own code) and reports a learner's file, and every
file link and ``tinygrad_rad.*`` name a chapter points to exists."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tinygrad_rad.learn import CHAPTERS, LEARN_DIR, chapter_path, code_blocks
from tinygrad_rad.learn.check import check
from tinygrad_rad.learn.exercises import chapter_module

DOCS = sorted(LEARN_DIR.glob("*.md"))


def _run(args, tmp_path, timeout=240):
    env = dict(os.environ, TGR_LEARN_OUT=str(tmp_path))
    env.pop("TGR_BACKEND", None)
    return subprocess.run([sys.executable, "-m", "tinygrad_rad.learn", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=LEARN_DIR.parents[1])


@pytest.mark.parametrize("n", sorted(CHAPTERS))
def test_chapter_runs_short(n, tmp_path):
    res = _run(["run", str(n), "--short", "--out", str(tmp_path)], tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out_md = tmp_path / CHAPTERS[n].replace(".md", ".out.md")
    assert out_md.exists()
    assert "```text" in out_md.read_text()  # the chapter printed its numbers


@pytest.mark.parametrize("n", [3, 7])
def test_chapters_skip_training_cleanly_without_data(n, tmp_path):
    empty = tmp_path / "no_data"
    empty.mkdir()
    env = dict(os.environ, TGR_LEARN_OUT=str(tmp_path), TINYGRAD_RAD_DATA=str(empty))
    res = subprocess.run([sys.executable, "-m", "tinygrad_rad.learn", "run", str(n), "--short"],
                         capture_output=True, text=True, env=env, timeout=240, cwd=LEARN_DIR.parents[1])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "not found" in res.stdout


@pytest.mark.parametrize("n", sorted(CHAPTERS))
def test_checker_passes_on_shipped_solutions(n, tmp_path):
    res = _run(["check", str(n)], tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    k = len(chapter_module(n).EXERCISES) if n != 6 else None
    if k is not None:
        assert f"{k}/{k} passed" in res.stdout


def test_checker_reports_a_learners_file(tmp_path):
    f = tmp_path / "my_ch1.py"
    f.write_text(
        "import numpy as np\n"
        "from tinygrad_rad.autograd import Function\n"
        "class Sigmoid(Function):\n"
        "    def forward(self, a):\n"
        "        self.out = 1 / (1 + np.exp(-a))\n"
        "        return self.out\n"
        "    def backward(self, g):\n"
        "        return (g * self.out,)  # wrong on purpose\n"
        "class Exp(Function):\n"
        "    def forward(self, a):\n"
        "        self.out = np.exp(a)\n"
        "        return self.out\n"
        "    def backward(self, g):\n"
        "        return (g * self.out,)\n"
    )
    import io

    buf = io.StringIO()
    res = check(1, f, out=buf)
    assert res == {"Sigmoid": False, "Exp": True, "toposort": False}, buf.getvalue()
    assert "SKIP  toposort" in buf.getvalue() and "1/3 passed" in buf.getvalue()


def test_checker_names_a_broken_or_missing_file(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def unbroadcast(grad, shape)\n    return grad\n")  # syntax error
    res = _run(["check", "2", "--file", str(bad)], tmp_path)
    assert res.returncode == 2 and "cannot import" in res.stderr and "SyntaxError" in res.stderr
    res = _run(["check", "2", "--file", str(tmp_path / "missing.py")], tmp_path)
    assert res.returncode == 2 and "missing.py" in res.stderr


def test_list_and_bad_chapter(tmp_path):
    res = _run(["list"], tmp_path)
    assert res.returncode == 0, res.stderr
    for n in CHAPTERS:
        assert f"{n}. " in res.stdout
    res = _run(["check", "99"], tmp_path)
    assert res.returncode == 2 and "no chapter 99" in res.stderr


def test_every_chapter_has_code_settings_and_the_closing_sections():
    for n in CHAPTERS:
        text = chapter_path(n).read_text()
        blocks = code_blocks(chapter_path(n))
        assert blocks and "settings()" in blocks[0][1], f"chapter {n}: first block must call settings()"
        assert "## Where this lives in tinygrad_rad" in text, n
        assert "## Exercises" in text, n
        assert 2 <= len(chapter_module(n).EXERCISES) <= 4, n


_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
_NAME = re.compile(r"`(tinygrad_rad(?:\.[A-Za-z_]\w*)+)`")


def _resolve(name: str):
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)  # AttributeError: a dangling name
        return obj
    raise ImportError(name)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_and_names_exist(doc):
    text = doc.read_text()
    prose = re.sub(r"`[^`\n]*`", "", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))  # no code
    for target in _LINK.findall(prose):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (doc.parent / target).exists(), f"{doc.name}: dangling link {target}"
    for name in sorted(set(_NAME.findall(text))):
        try:
            _resolve(name)
        except (ImportError, AttributeError) as e:
            pytest.fail(f"{doc.name}: `{name}` does not exist ({e})")


def test_chapter_code_is_ruff_clean(tmp_path):
    import shutil

    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed")
    for n in CHAPTERS:  # the blocks of a chapter as one file (imports may follow prose: E402 is fine)
        code = "\n".join(f"# line {line}\n{c}" for line, c in code_blocks(chapter_path(n)))
        (tmp_path / f"ch{n}.py").write_text(code)
    root = LEARN_DIR.parents[1]
    res = subprocess.run([ruff, "check", "--config", str(root / "pyproject.toml"), "--ignore", "E402,I001",
                          str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:]


def test_exercise_solutions_are_framework_names():
    from tinygrad_rad.learn.exercises import resolve

    for n in CHAPTERS:
        if n == 6:
            continue  # imports numba.cuda (the simulator must be chosen first): covered by the checker run
        for ex in chapter_module(n).EXERCISES:
            assert ex.solution.startswith("tinygrad_rad."), ex
            assert callable(resolve(ex.solution)), ex


# The simulator never checks that Numba can type a kernel for a real GPU: compile chapter 6's three GEMM
# kernels to PTX (libNVVM only: no driver, no GPU), in a process without the simulator.
PTX_CHECK = r"""
import sys, types
import numpy as np
from numba import cuda, float32
from numba.cuda.cudadrv import nvvm
if not nvvm.is_available():
    print("SKIP: no libNVVM"); sys.exit(0)
from numba.cuda import dispatcher
from tinygrad_rad.kernels import cuda_ptx
from tinygrad_rad.learn import chapter_path, code_blocks
getattr(cuda_ptx, "_patch_numba_without_nvrtc", lambda: None)()
dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(8, 0))
ns = {"np": np, "cuda": cuda, "float32": float32, "SIM": False, "SHORT": True}
ns["rng"] = np.random.default_rng(0)
names = []
for _, code in code_blocks(chapter_path(6)):
    if "@cuda.jit" in code:  # the kernel definitions, without the launches
        exec("\n".join(line for line in code.splitlines() if not line.startswith("check(")), ns)
        names += [line[4:].split("(")[0] for line in code.splitlines() if line.startswith("def gemm_")]
assert names == ["gemm_naive", "gemm_tiled", "gemm_regblock"], names
for name in names:
    cuda.compile_ptx(ns[name].py_func, (float32[:, ::1],) * 3, cc=(8, 0))
print("OK")
"""


def test_chapter6_kernels_compile_for_the_gpu():
    pytest.importorskip("numba.cuda")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    p = subprocess.run([sys.executable, "-c", PTX_CHECK], cwd=LEARN_DIR.parents[1], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    if p.stdout.startswith("SKIP"):
        pytest.skip(p.stdout.strip())
    assert "OK" in p.stdout
