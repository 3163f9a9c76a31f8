"""The Python API: ``import kdtune`` loads no torch, and the README's example runs as written."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_import_kdtune_loads_no_torch():
    code = ("import sys, kdtune, kdtune.record, kdtune.config, kdtune.report; "
            "assert callable(kdtune.run_search) and callable(kdtune.retrain_experiment); "
            "print(sorted(m for m in ('torch', 'ray', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_the_readme_example_runs(smoke_space, capsys):
    example = readme_example()
    assert len(example.strip().splitlines()) <= 10
    # as written, but on the generated data set: a clean clone has no ../shared
    assert example.count('"search_spaces/smoke.yaml"') == 1
    example = example.replace('"search_spaces/smoke.yaml"', repr(str(smoke_space)))
    target = ROOT / "results" / "api-demo"
    shutil.rmtree(target, ignore_errors=True)
    try:
        namespace: dict = {}
        exec(compile(example, "README.md", "exec"), namespace)
        out = capsys.readouterr().out.splitlines()
        exp, report = namespace["exp"], namespace["report"]
        assert exp.state == "finished" and len(exp.trials) == 5
        alpha, base = exp.picks["distilled"]["hparams"]["alpha"], exp.picks["baseline"]["trial_id"]
        assert f"{alpha} {base}" in out  # the example's first print
        assert report.verdict["kind"] in ("kd_better", "kd_worse", "equivalent", "inconclusive")
        assert out[-1].startswith(report.verdict["kind"])
        assert (target / "retrain" / "model" / "README.md").is_file()
    finally:
        shutil.rmtree(target, ignore_errors=True)
