"""Property-based: malformed search spaces and CLI argument lists end in one-line errors, exit 2."""

import copy

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdtune import search
from kdtune.config import ConfigError, ExperimentConfig, load_config, parse_config

VALID = load_config("search_spaces/smoke.yaml").to_dict()
SECTIONS = ["data", "teacher", "student", "train", "search"]
KEYS = sorted({(s, k) for s in SECTIONS for k in VALID[s]} | {("space", "alpha"),
              ("space", "temperature"), ("space", "learning_rate"), ("train", "nope"),
              ("space", "beta"), ("search", "metric"), ("data", "text_column")})

junk = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=12)
    | st.floats(allow_nan=True, allow_infinity=True),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=6)


@st.composite
def malformed(draw):
    doc = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.integers(0, 9))
        if kind == 0:
            doc[draw(st.sampled_from(["name", "results_dir", "space", *SECTIONS, "other"]))] = \
                draw(junk)
        else:
            section, key = draw(st.sampled_from(KEYS))
            if not isinstance(doc.get(section), dict):
                doc[section] = {}
            doc[section][key] = draw(junk)
    return doc


def _one_line_error(exc: ConfigError) -> None:
    text = str(exc)
    assert "\n" not in text and exc.field and text.startswith(exc.field)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(malformed())
def test_malformed_documents_give_one_line_errors(doc):
    try:
        cfg = parse_config(doc)
    except ConfigError as exc:
        _one_line_error(exc)
    else:  # a mutation that stayed valid must give a fully validated config
        assert isinstance(cfg, ExperimentConfig)


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.text(max_size=200), junk.map(lambda v: yaml.safe_dump(v))))
def test_arbitrary_yaml_text(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "space.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    _one_line_error(err.value)


WORDS = ["--space", "search_spaces/smoke.yaml", "nope.yaml", "--name", "x", "a/b", "--num-samples",
         "0", "-3", "abc", "5", "--results-dir", "--resume", "--overwrite", "--bogus", "--address",
         "--restart-errored", "", "--space=search_spaces/alpha_temp.yaml", "-v"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(WORDS), max_size=6))
def test_cli_arguments(tmp_path, smoke_space, capsys, args):
    # the smoke space on the generated data set, so that valid argument lists dry-run to rc 0
    args = [str(smoke_space) if a == "search_spaces/smoke.yaml" else a for a in args]
    argv = [*args, "--results-dir", str(tmp_path), "--dry-run"]
    try:
        rc = search.main(argv)
    except SystemExit as exc:  # argparse: usage errors and --help
        rc = exc.code
    out = capsys.readouterr()
    assert rc in (0, 2)
    if rc == 2:
        lines = [ln for ln in out.err.splitlines() if "error:" in ln]
        assert len(lines) == 1 and "Traceback" not in out.err
    assert not any(p.name != "x" and p.is_dir() and (p / "tune").exists()
                   for p in tmp_path.iterdir())  # never a started search
