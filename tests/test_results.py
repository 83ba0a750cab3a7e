"""results/: summaries keep earlier seeds that runs/ no longer holds; a re-run seed replaces."""

import glob
import json
import os

import pytest

from dreamer.config import DreamerConfig, apply_recipe, config_to_dict
from dreamer.results import (
    config_sha,
    main,
    markers,
    recipe_sha,
    summarise_env,
    summary_dir,
    table,
)


def _fake_run(env_dir, seed, final, gamma=0.997, name="default", eval_every=1000):
    run = env_dir / f"{name}-seed{seed}"
    run.mkdir(parents=True)
    rows = f"env_step,wall_time,eval_mean\n1000,5,10.0\n1500,8,\n2000,12,{final}\n"
    (run / "metrics.csv").write_text(rows)
    result = {
        "env_id": "Fake-v0",
        "seed": seed,
        "steps_to_threshold": 2000,
        "final_eval": final,
        "best_eval": final,
        "env_steps": 2000,
        "updates": 50,
        "wall_time": 60.0,
        "command": f"python x.py --seed {seed}",
        "git_commit": "abc",
        "threads": 1,
        "torch": "2.13.0",
        "config": {
            "train": {"threshold": 20.0, "steps": 2000, "eval_every": eval_every},
            "gamma": gamma,
        },
    }
    (run / "result.json").write_text(json.dumps(result))


def test_summary_keeps_earlier_seeds_and_replaces_rerun_ones(tmp_path):
    env_dir, out_dir = tmp_path / "runs" / "Fake-v0", tmp_path / "results" / "Fake-v0"
    _fake_run(env_dir, 0, 30.0)
    _fake_run(env_dir, 1, 40.0)
    summarise_env(str(env_dir), "default", str(out_dir))
    # a new checkout: runs/ holds only a re-run of seed 1 and a new seed 2
    for seed in (0, 1):
        for f in (env_dir / f"default-seed{seed}").iterdir():
            f.unlink()
        (env_dir / f"default-seed{seed}").rmdir()
    _fake_run(env_dir, 1, 45.0)
    _fake_run(env_dir, 2, 50.0)
    summary = summarise_env(str(env_dir), "default", str(out_dir))
    assert [s["seed"] for s in summary["seeds"]] == [0, 1, 2]
    assert [s["final_eval"] for s in summary["seeds"]] == [30.0, 45.0, 50.0]
    assert summary["seeds"][0]["curve"] == [[1000, 10.0], [2000, 30.0]]
    assert summary["seeds"][0]["wall_time_to_threshold_s"] == 12  # first eval >= 20
    assert json.loads((out_dir / "summary.json").read_text()) == summary
    assert (out_dir / "curves.png").stat().st_size > 0


@pytest.mark.parametrize(
    "change, kept",
    [({"gamma": 0.99}, [1]), ({"eval_every": 500}, [0, 1])],
    ids=["another recipe: dropped", "another task setting: kept"],
)
def test_summary_keeps_earlier_seeds_only_of_the_same_recipe(tmp_path, change, kept):
    """An earlier seed trained by another recipe leaves the summary; one that only evaluated at
    another interval (a task setting: another config fingerprint, the same recipe) stays."""
    env_dir, out_dir = tmp_path / "runs" / "Fake-v0", tmp_path / "results" / "Fake-v0"
    _fake_run(env_dir, 0, 30.0)
    summarise_env(str(env_dir), "default", str(out_dir))
    other = tmp_path / "runs2" / "Fake-v0"
    _fake_run(other, 1, 45.0, **change)
    summary = summarise_env(str(other), "default", str(out_dir))
    assert [s["seed"] for s in summary["seeds"]] == kept


def test_config_fingerprint_ignores_a_field_at_its_default():
    """A run recorded before a field existed fingerprints as one that has it at its default."""
    config = config_to_dict(DreamerConfig())
    config["world_model"]["lr"] = 3e-4
    older = json.loads(json.dumps(config))
    del older["train"]["prefill_hold"]
    assert config_sha(older) == config_sha(config)
    config["train"]["prefill_hold"] = 4
    assert config_sha(older) != config_sha(config)


def test_named_runs_get_their_own_summary_and_readme_table(tmp_path):
    runs, results, readme = tmp_path / "runs", tmp_path / "results", tmp_path / "README.md"
    _fake_run(runs / "Fake-v0", 0, 30.0)
    _fake_run(runs / "Fake-v0", 0, 25.0, name="bf16")
    readme.write_text(
        "<!-- RESULTS:START -->\nold\n<!-- RESULTS:END -->\n"
        "<!-- RESULTS:bf16:START -->\nold\n<!-- RESULTS:bf16:END -->\n"
    )
    common = ["--runs", str(runs), "--results", str(results), "--readme", str(readme)]
    assert main(common) == 0
    assert main([*common, "--name", "bf16"]) == 0
    default = json.loads((results / "Fake-v0" / "summary.json").read_text())
    bf16 = json.loads((results / "Fake-v0" / "bf16" / "summary.json").read_text())
    assert (default["run_name"], default["seeds"][0]["final_eval"]) == ("default", 30.0)
    assert (bf16["run_name"], bf16["seeds"][0]["final_eval"]) == ("bf16", 25.0)
    default_table, bf16_table = readme.read_text().split("<!-- RESULTS:bf16:START -->")
    assert "| 30 |" in default_table and "| 25 |" not in default_table
    assert "| 25 |" in bf16_table and "| 30 |" not in bf16_table


def test_a_name_without_readme_markers_fails_with_one_line_before_writing(tmp_path, capsys):
    runs, results, readme = tmp_path / "runs", tmp_path / "results", tmp_path / "README.md"
    _fake_run(runs / "Fake-v0", 0, 30.0, name="new")
    readme.write_text("<!-- RESULTS:START -->\nold\n<!-- RESULTS:END -->\n")
    argv = ["--runs", str(runs), "--results", str(results), "--readme", str(readme)]
    assert main([*argv, "--name", "new"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "<!-- RESULTS:new:START -->" in err[0]
    assert not results.exists()  # nothing summarised for a table that has nowhere to go


def test_recipe_fingerprint_ignores_the_task_settings_only():
    config = DreamerConfig()
    base = config_to_dict(config)
    task = config_to_dict(config)
    task["train"].update(steps=7, threshold=-100.0, eval_every=3, eval_episodes=2)
    assert recipe_sha(task) == recipe_sha(base)  # another task, the same recipe
    for key, value in [("train_ratio", 64.0), ("prefill", 5)]:
        other = config_to_dict(config)
        other["train"][key] = value
        assert recipe_sha(other) != recipe_sha(base), key
    other = config_to_dict(config)
    other["actor_critic"]["horizon"] = 30
    assert recipe_sha(other) != recipe_sha(base)
    assert recipe_sha(config_to_dict(apply_recipe(DreamerConfig(), "2025"))) != recipe_sha(base)
    # the table shows each row's fingerprint
    summary = {"env_id": "Fake-v0", "threshold": 1.0, "seeds": [
        {"seed": 0, "steps_to_threshold": None, "final_eval": 1.0, "env_steps": 7,
         "budget": 7, "wall_time_s": 60.0, "recipe": recipe_sha(base)}]}  # fmt: skip
    assert table([summary]).splitlines()[2].endswith(f"| {recipe_sha(base)} |")


def test_table_lists_each_budget_its_seeds_ran_with():
    seed = {"steps_to_threshold": None, "final_eval": 1.0, "wall_time_s": 60.0, "recipe": "r"}
    summary = {"env_id": "Fake-v0", "threshold": 1.0, "seeds": [
        {**seed, "seed": 0, "env_steps": 50_000, "budget": 50_000},
        {**seed, "seed": 1, "env_steps": 20_000, "budget": 20_000},
        {**seed, "seed": 2, "env_steps": 900, "budget": 20_000}]}  # fmt: skip
    row = table([summary]).splitlines()[2]
    assert row.startswith("| Fake-v0 | 1 | 50,000, 20,000 | 3 |")
    assert "1 (stopped at 900)" in row


def test_recipe_fingerprint_takes_a_whole_float_and_its_int_as_one_setting():
    # --train-ratio parses 128 as 128.0; a preset's code may write 128 for the same float field
    flag, code, other = (config_to_dict(DreamerConfig()) for _ in range(3))
    flag["train"]["train_ratio"], code["train"]["train_ratio"] = 128.0, 128
    other["train"]["train_ratio"] = 128.5
    assert recipe_sha(flag) == recipe_sha(code)
    assert recipe_sha(other) != recipe_sha(code)


def test_recipe_fingerprint_survives_new_fields_at_their_defaults():
    config = config_to_dict(DreamerConfig())
    config["actor_critic"]["horizon"] = 30
    older = {**config, "actor_critic": dict(config["actor_critic"])}
    del older["actor_critic"]["actor_outscale"]  # a run from before the field existed
    del older["twohot"]
    assert recipe_sha(older) == recipe_sha(config)


def test_plotting_draws_a_curve_from_a_metrics_file_alone(tmp_path, capsys):
    from dreamer import plotting

    metrics = tmp_path / "metrics.csv"
    metrics.write_text("env_step,episode_return,eval_mean,eval_std,loss/dec\n1000,5,10.0,1.0,0.5\n")
    out = tmp_path / "curve.png"
    assert plotting.main([str(metrics), str(out), "--threshold", "20"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plotting.main([str(tmp_path / "missing.csv"), str(out)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_committed_summaries_sit_where_their_run_name_puts_them():
    # The default name is the user's: a plain script run summarised with no --name must not
    # join (and be labelled as) the project's runs of some older recipe. So no committed summary
    # is default-named, and each named one sits in results/<env>/<name>/ with a table to go to.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "README.md")) as f:
        readme = f.read()
    with open(os.path.join(root, "docs", "experiments.md")) as f:
        docs = readme + f.read()
    paths = glob.glob(os.path.join(root, "results", "*", "**", "summary.json"), recursive=True)
    assert paths
    for path in paths:
        with open(path) as f:
            summary = json.load(f)
        name = summary["run_name"]
        assert name != "default", f"{path}: the project's runs under the user's default name"
        env = os.path.relpath(path, os.path.join(root, "results")).split(os.sep)[0]
        assert os.path.dirname(path) == summary_dir(os.path.join(root, "results"), env, name)
        start, end = markers(name)
        assert start in docs and end in docs, f"{path}: no table for run name {name!r}"
    assert all(marker in readme for marker in markers("default"))  # where a user's runs go
