"""The learner's path through tinygrad_rad: runnable chapters (``docs/learn/``) and their exercises.

    python -m tinygrad_rad.learn list                          # the chapters and their exercises
    python -m tinygrad_rad.learn run 1 --short                 # run chapter 1's code blocks in order
    python -m tinygrad_rad.learn check 1 --file my_solution.py # test your exercise solutions

A chapter is a Markdown file whose ```python blocks run top to bottom in one namespace; its first
block calls :func:`settings` to learn whether it runs in short mode (tiny sizes, few steps: what
the tests use) and where to write its figures.
"""

from __future__ import annotations

from .run import CHAPTERS, LEARN_DIR, chapter_path, code_blocks, data_dir, run_chapter, settings

__all__ = ["CHAPTERS", "LEARN_DIR", "chapter_path", "code_blocks", "data_dir", "run_chapter", "settings"]
