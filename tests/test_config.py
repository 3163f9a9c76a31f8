"""Config validation: every bad input is a one-line ConfigError naming the field."""

from pathlib import Path

import pytest
import yaml

from kdtune.config import ConfigError, load_config, parse_config

SPACE = Path("search_spaces/alpha_temp.yaml")


def raw():
    return yaml.safe_load(SPACE.read_text())


def test_shipped_spaces_load():
    for path in Path("search_spaces").glob("*.yaml"):
        cfg = load_config(path)
        assert cfg.space, path
    cfg = load_config(SPACE)
    assert cfg.name == "alpha_temp"
    assert [p.name for p in cfg.space] == ["alpha", "temperature", "learning_rate"]
    assert cfg.search.num_samples >= 12
    # the KD arm starts from the seed default; the tuned CE arm from the CE anchor
    assert cfg.anchor_points() == [
        {"alpha": 0.7, "temperature": 3.0, "learning_rate": 1e-4},
        {"alpha": 1.0, "beta": 0.0, "learning_rate": 1e-4}]
    # every trial starts from the train section; its sampled values are merged over it
    base = cfg.trial_base()
    assert base["epochs"] == 3 and base["alpha"] == cfg.train.alpha


def test_yaml_float_without_dot_is_accepted():
    d = raw()
    d["train"]["learning_rate"] = "1e-4"  # what PyYAML returns for 1e-4
    assert parse_config(d).train.learning_rate == pytest.approx(1e-4)


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(SPACE)
    out = tmp_path / "config.yaml"
    out.write_text(cfg.to_yaml())
    assert load_config(out) == cfg


BAD = [
    (("train", "alpha"), 1.5, "train.alpha"),
    (("train", "temperature"), 0, "train.temperature"),
    (("train", "learning_rate"), -1e-3, "train.learning_rate"),
    (("train", "epochs"), 0, "train.epochs"),
    (("train", "batch_size"), "big", "train.batch_size"),
    (("train", "bogus"), 1, "train.bogus"),
    (("data", "val_fraction"), 1.5, "data.val_fraction"),
    (("data", "max_length"), 2, "data.max_length"),
    (("student", "layers"), [5, 0], "student.layers"),
    (("student", "init"), "random", "student.init"),
    (("search", "metric"), "loss", "search.metric"),
    (("search", "mode"), "up", "search.mode"),
    (("search", "reduction_factor"), 1, "search.reduction_factor"),
    (("search", "num_samples"), 2, "search.num_samples"),
    (("search", "baseline"), "tuneed", "search.baseline"),
    (("search", "baseline_share"), 1.0, "search.baseline_share"),
    (("search", "confirm"), {"top_k": -1}, "search.confirm.top_k"),
    (("search", "confirm"), {"seeds": 2, "top": 1}, "search.confirm.top"),
    (("search", "grace_period"), 0.1, "search.grace_period"),  # before the warm-up ends (0.3)
    (("search", "loggers"), ["neptune"], "search.loggers"),
    (("train", "eval_every"), 0.3, "train.eval_every"),
    (("data", "hub_fallback"), True, "data.hub_fallback"),  # needs data.hub too (removed below)
    (("teacher", "learning_rate"), [1e-4, -1.0], "teacher.learning_rate"),
    (("space", "alpha"), {"type": "uniform", "low": 0.0, "high": 1.5}, "space.alpha"),
    (("space", "alpha"), {"type": "uniform", "low": 0.8, "high": 0.9}, "space.alpha"),
    (("space", "temperature"), {"type": "normal", "low": 1, "high": 2}, "space.temperature.type"),
    (("space", "learning_rate"), {"type": "loguniform", "low": 0.0, "high": 1e-3},
     "space.learning_rate.low"),
    (("space", "gamma"), {"type": "uniform", "low": 0, "high": 1}, "space.gamma"),
    (("space", "alpha"), {"type": "choice", "values": []}, "space.alpha.values"),
    (("teacher", "finetuned"), "/no/such/folder", "teacher.finetuned"),
    (("teacher", "epochs"), 0, "teacher.epochs"),
]


@pytest.mark.parametrize("where,value,field", BAD, ids=[b[2] + "=" + str(b[1])[:20] for b in BAD])
def test_bad_values_name_the_field(where, value, field):
    d = raw()
    d["data"].pop("hub", None)
    d["data"].pop("hub_fallback", None)  # a fallback needs a hub
    d[where[0]][where[1]] = value
    with pytest.raises(ConfigError) as err:
        parse_config(d)
    assert err.value.field == field
    assert "\n" not in str(err.value)


def test_unknown_section_and_non_mapping():
    d = raw()
    d["extra"] = {}
    with pytest.raises(ConfigError, match="extra"):
        parse_config(d)
    with pytest.raises(ConfigError):
        parse_config(["not", "a", "mapping"])


def test_python_tags_are_refused(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("name: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_choice_values_from_yaml_strings_and_anchor_labels():
    d = raw()
    d["space"]["learning_rate"] = {"type": "choice", "values": ["1e-4", 3.0e-4]}  # 1e-4: a str
    cfg = parse_config(d)
    assert next(p for p in cfg.space if p.name == "learning_rate").values == [1e-4, 3e-4]
    d["space"]["learning_rate"] = {"type": "choice", "values": ["fast"]}
    with pytest.raises(ConfigError) as err:
        parse_config(d)
    assert err.value.field == "space.learning_rate.values"
    # dropout searched while train.dropout is null: a clear error, not a TypeError
    d = raw()
    d["space"]["dropout"] = {"type": "uniform", "low": 0.0, "high": 0.3}
    with pytest.raises(ConfigError) as err:
        parse_config(d)
    assert err.value.field == "space.dropout"
    # without alpha in the space there is no CE-only run: nothing is labelled baseline
    from kdtune.config import anchor_label
    d = raw()
    del d["space"]["alpha"]
    cfg = parse_config(d)
    assert [anchor_label(a, cfg.anchor_points()) for a in cfg.anchor_points()] == ["seed default"]
    full = load_config(SPACE)
    assert [anchor_label(a, full.anchor_points()) for a in full.anchor_points()] == [
        "seed default", "CE anchor"]


def arms(d):
    return {a.name: (a.num_samples, [p.name for p in a.space], a.points, dict(a.pinned))
            for a in parse_config(d).arms()}


def test_tuned_baseline_arm_takes_a_quarter_and_at_least_three():
    d = raw()  # 14 trials: round(0.25 * 14) = 4 CE trials, 10 KD trials
    got = arms(d)
    assert got["ce"] == (4, ["learning_rate"], ({"learning_rate": 1e-4},), {"alpha": 1.0, "beta": 0.0})
    assert got["kd"][0] == 10 and got["kd"][1] == ["alpha", "temperature", "learning_rate"]
    d["search"]["num_samples"] = 6  # a quarter is 1.5: the arm still gets 3
    assert arms(d)["ce"][0] == 3 and arms(d)["kd"][0] == 3
    d["search"]["num_samples"] = 4  # 3 CE + the seed anchor leaves no searched KD trial
    with pytest.raises(ConfigError) as err:
        parse_config(d)
    assert err.value.field == "search.num_samples" and "baseline: fixed" in str(err.value)
    d["search"]["baseline"] = "fixed"  # one study, both anchors (as kdtune 0.1 did)
    cfg = parse_config(d)
    assert list(arms(d)) == ["kd"] and [a["alpha"] for a in cfg.anchor_points()] == [1.0, 0.7]
    assert cfg.protected_anchors() == cfg.anchor_points()
    d["search"]["baseline"] = "none"
    assert [a["alpha"] for a in parse_config(d).anchor_points()] == [0.7]
    # only KD-only parameters searched: nothing to tune for CE, so the CE anchor stands alone
    d = raw()
    del d["space"]["learning_rate"]
    cfg = parse_config(d)
    assert cfg.baseline_mode == "fixed" and list(arms(d)) == ["kd"]


def test_rungs_inside_epochs_are_validated():
    d = raw()
    d["train"]["eval_every"] = 0.25
    d["search"]["grace_period"] = 0.5
    cfg = parse_config(d)
    assert cfg.train.eval_every == 0.25 and cfg.search.grace_period == 0.5
    d["search"]["grace_period"] = 0.6  # not on an evaluation
    with pytest.raises(ConfigError) as err:
        parse_config(d)
    assert err.value.field == "search.grace_period" and "multiple" in str(err.value)
    # no grace period given: the first evaluation at or after 0.5 epochs and the warm-up's end
    del d["search"]["grace_period"]
    d["train"].update(epochs=10, warmup_fraction=0.1)
    cfg = parse_config(d)
    assert cfg.grace_period == 1.0  # the warm-up ends at 1 epoch
    assert cfg.search.grace_period is None  # validation leaves the section as written
    assert cfg.to_dict()["search"]["grace_period"] == 1.0  # the resolved config saves the value
    d["train"].update(epochs=3, eval_every=1.0 / 3)
    assert parse_config(d).grace_period == pytest.approx(2 / 3, abs=1e-6)
    d["search"]["grace_period"] = 0.6
    with pytest.raises(ConfigError) as err:
        parse_config(d)
    assert err.value.field == "search.grace_period" and "multiple" in str(err.value)


def test_the_readmes_key_table_matches_the_code():
    """The README lists every configuration key with its default, generated from the config's
    dataclasses: a key added, removed or given another default without the README fails here."""
    from pathlib import Path

    from kdtune.config import reference_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme.split("<!-- kdtune:keys -->\n", 1)[1].split("\n<!-- /kdtune:keys -->", 1)[0]
    assert table == reference_table()
    for key in ("`precision` = `auto`", "`strategy` = `tpe_asha`", "`logit_loss` = `kl`"):
        assert key in table
