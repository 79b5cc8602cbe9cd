"""The README's tour must run as written (keeps the docs true to the code)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_opens_with_the_two_commands():
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make demo", "make test"]


def test_readme_tour_runs(capsys):
    code = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    exec(compile(code, "README tour", "exec"), {})
    out = capsys.readouterr().out
    losses = [float(line.split()[1]) for line in out.splitlines() if re.match(r"^\d \d", line)]
    assert len(losses) == 3 and losses[-1] < losses[0]  # the three SGD steps reduce the loss
