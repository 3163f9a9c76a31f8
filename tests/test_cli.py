"""The ``kdtune`` command: subcommands, ``--version``, ``python -m kdtune``, ``--set`` overrides."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import kdtune
from kdtune.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def test_version_and_usage(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"kdtune {kdtune.__version__}"
    assert main([]) == 2 and "search,report,retrain,export" in capsys.readouterr().out
    assert main(["train"]) == 2
    assert capsys.readouterr().err.strip() == ("kdtune: error: unknown subcommand 'train'; one of "
                                               "search, report, retrain, export (see kdtune --help)")


def test_python_dash_m_kdtune_and_the_console_script():
    out = subprocess.run([sys.executable, "-m", "kdtune", "--version"], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"kdtune {kdtune.__version__}"
    script = shutil.which("kdtune")
    if script is None:
        pytest.skip("the kdtune console script is not on PATH (kdtune not pip-installed)")
    out = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"kdtune {kdtune.__version__}"


def test_set_overrides_reach_the_resolved_config(tmp_path, smoke_space, capsys):
    rc = main(["search", "--space", str(smoke_space), "--set", "train.epochs=1",
               "--set", "search.strategy=random_asha", "--set", "search.grid={alpha: [0.5]}",
               "--set", "train.learning_rate=3e-4", "--results-dir", str(tmp_path), "--dry-run"])
    assert rc == 0
    out = capsys.readouterr().out
    resolved = yaml.safe_load(out.split("budget:")[0])
    assert resolved["train"]["epochs"] == 1 and resolved["train"]["learning_rate"] == 3e-4
    assert resolved["search"]["strategy"] == "random_asha"
    assert resolved["search"]["grid"] == {"alpha": [0.5]}
    assert "max_epochs_per_trial: 1" in out


@pytest.mark.parametrize("sets, field", [
    (["trainepochs"], "--set"),
    (["train.epochs=zero"], "train.epochs"),
    (["train.nope=1"], "train.nope"),
    (["search.strategy=hyperband"], "search.strategy"),
])
def test_bad_set_is_one_line(sets, field, tmp_path, capsys):
    argv = ["search", "--space", "search_spaces/smoke.yaml", "--results-dir", str(tmp_path), "--dry-run"]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"kdtune.search: error: {field}"), err


def test_progress_bars_only_on_a_terminal():
    """Long driver stages show a tqdm bar with an ETA on a terminal, nothing in a pipe or file."""
    import pty

    code = ("from kdtune.logs import progress_bar\n"
            "with progress_bar(3, 'stage', 'step') as bar:\n"
            "    print('bar' if bar is not None else 'none', flush=True)\n"
            "    [bar.update(1) for _ in range(3)] if bar is not None else None\n")
    piped = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert piped.stdout.strip() == "none" and piped.stderr == ""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()  # a terminal of 100 columns: the bar is there, with its ETA
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=slave, stdout=slave, stderr=slave,
                            close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(master)
    text = b"".join(chunks).decode(errors="replace")
    assert "bar" in text and "stage:" in text and "/3 [00:00<" in text, text  # elapsed<ETA
