"""dreamer as a library: installing it, the `dreamer` command, your own env, acting from a
checkpoint in user code (docs/library.md)."""

import importlib.util
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import tiny_config

from dreamer import DreamerAgent
from dreamer.envs import make_env, space_info, spaces_from_info
from dreamer.train import Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = "Scripts" if os.name == "nt" else "bin"


def clean_env() -> dict:
    """The environment of a user's shell: no PYTHONPATH into the checkout, one thread each."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize("editable", [False, True], ids=["install", "editable"])
def test_pip_install_into_venv_gives_the_dreamer_command(tmp_path, editable):
    """`pip install [-e] .` into a fresh venv (its dependencies from this Python, so nothing is
    downloaded), then the console script and the package work from another folder."""
    src = tmp_path / "src"  # a copy, so the build leaves nothing in the checkout
    src.mkdir()
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), src)
    shutil.copytree(os.path.join(ROOT, "dreamer"), src / "dreamer",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    (src / "results").mkdir()  # a second top-level folder: discovery must stay explicit
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True, timeout=120)  # fmt: skip
    python = str(venv / BIN / "python")
    # The dependencies come from this Python's site-packages even when it is itself a venv
    # (then --system-site-packages would reach past it to the base interpreter).
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = subprocess.run([python, "-c", where], capture_output=True, text=True, check=True)
    ours = [p for p in [*site.getsitepackages(), site.getusersitepackages()] if os.path.isdir(p)]
    (Path(purelib.stdout.strip()) / "outer_site.pth").write_text("\n".join(ours) + "\n")
    # This Python's setuptools builds it offline; without one, pip fetches it from PyPI.
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    install = [python, "-m", "pip", "install", "-q", "--no-deps", *isolation,
               *(["-e"] if editable else []), str(src)]  # fmt: skip
    out = subprocess.run(install, capture_output=True, text=True, timeout=300, env=clean_env())
    assert out.returncode == 0, out.stderr[-2000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=elsewhere, capture_output=True, text=True, timeout=300,
                              env=clean_env())  # fmt: skip

    out = run(str(venv / BIN / "dreamer"), "--help")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "--env" in out.stdout and "module:id" in out.stdout
    show = "import dreamer, importlib.metadata as m; print(dreamer.__file__, m.version('dreamer'))"
    out = run(python, "-c", show)
    assert out.returncode == 0, out.stderr[-2000:]
    path, version = out.stdout.split()
    assert path.startswith(str(src if editable else venv)), path
    assert version == __import__("dreamer").__version__
    if editable:
        return
    # --env module:id imports my_envs.py from the current folder, as `python -m dreamer` does;
    # a module that does not register the id gets one line and status 2.
    (elsewhere / "my_envs.py").write_text("REGISTERED = []\n")
    out = run(str(venv / BIN / "dreamer"), "--env", "my_envs:Nope-v0")
    assert out.returncode == 2
    assert "does 'my_envs' call gymnasium.register('Nope-v0', ...)?" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_module_id_imports_the_module_that_registers_it(tmp_path, monkeypatch):
    (tmp_path / "lib_envs.py").write_text(
        "import gymnasium\n"
        "gymnasium.register('LibCartPole-v0', "
        "entry_point='gymnasium.envs.classic_control:CartPoleEnv')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert make_env("lib_envs:LibCartPole-v0").observation_space.shape == (4,)
    with pytest.raises(ValueError, match="cannot import module 'no_such_pkg.envs'"):
        make_env("no_such_pkg.envs:MyEnv-v0")
    with pytest.raises(ValueError, match="expected 'EnvId' or 'module:EnvId'"):
        make_env("a:b:MyEnv-v0")


class Walk(gym.Env):
    """A custom env with no registered id: 1-D position, left or right."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(1, np.float32), float(action), False, self.t >= 5, {}


def test_trainer_takes_a_factory_and_refuses_an_instance(tmp_path):
    config = tiny_config()
    config.train.steps, config.train.prefill, config.train.eval_episodes = 20, 10, 2
    trainer = Trainer(Walk, config, str(tmp_path / "walk"), device="cpu", progress=False)
    assert trainer.env_id == "Walk"  # no spec: the class name names the run
    mean, _ = trainer.evaluate()  # on fresh envs from the factory: a return of 0 to 5
    assert 0.0 <= mean <= 5.0
    spec_made = Trainer(lambda: gym.make("CartPole-v1"), config, str(tmp_path / "cp"),
                        device="cpu", progress=False)  # fmt: skip
    assert spec_made.env_id == "CartPole-v1"
    with pytest.raises(TypeError, match="pass a zero-argument factory instead"):
        Trainer(Walk(), config, str(tmp_path / "instance"), device="cpu", progress=False)
    with pytest.raises(TypeError, match="returned type int, not a gymnasium Env"):
        make_env(lambda: 3)


def test_act_from_checkpoint_in_five_lines(tmp_path):
    """Both checkpoint kinds of a run (latest.pt: the run; best.pt: the agent) load without an
    env, hold the trained weights, and act an episode with the five lines of docs/library.md."""
    config = tiny_config()
    config.train.steps, config.train.prefill, config.train.train_ratio = 30, 10, 32  # 20 updates
    config.train.eval_every, config.train.eval_episodes = 30, 1
    trainer = Trainer("CartPole-v1", config, str(tmp_path), device="cpu", progress=False)
    trainer.run()
    env = gym.make("CartPole-v1")
    for name in ("latest.pt", "best.pt"):
        agent = DreamerAgent.from_checkpoint(tmp_path / name)
        for key, value in trainer.agent.state_dict().items():
            assert torch.equal(agent.state_dict()[key], value), (name, key)
        steps = 0
        # -- the five lines --
        obs, _ = env.reset(seed=0)
        is_first, done = True, False  # is_first: the agent resets its recurrent state
        while not done:
            action = agent.act(obs, is_first, explore=False)
            obs, reward, terminated, truncated, _ = env.step(action)
            done, is_first = terminated or truncated, False
            steps += 1
        assert steps > 0 and isinstance(action, int)
    with pytest.raises(ValueError, match="is not a dreamer checkpoint"):
        torch.save({"format": "something else"}, tmp_path / "other.pt")
        DreamerAgent.from_checkpoint(tmp_path / "other.pt")


def test_continuous_spaces_survive_the_checkpoint(tmp_path):
    """Box bounds (float64, not only float32) come back exactly, so the stored spaces match."""
    observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    action_space = gym.spaces.Box(np.array([-0.1, 0.0]), np.array([0.3, 2.5]), dtype=np.float64)
    agent = DreamerAgent(observation_space, action_space, tiny_config())
    agent.save(tmp_path / "agent.pt")
    loaded = DreamerAgent.from_checkpoint(tmp_path / "agent.pt")
    assert loaded.spaces == agent.spaces == space_info(*spaces_from_info(agent.spaces))
    action = loaded.act(np.zeros(3, np.float32), is_first=True)
    low, high = np.float32([-0.1, 0.0]), np.float32([0.3, 2.5])  # the env gets float32
    assert action.shape == (2,) and (low <= action).all() and (action <= high).all()


def test_custom_env_example_trains_and_reloads(tmp_path):
    """examples/custom_env.py --quick from another folder, without installing the package."""
    logdir = tmp_path / "run"
    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "custom_env.py"),
                          "--quick", "--logdir", str(logdir)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, env=clean_env())  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"reloaded {logdir}/best.pt" in out.stdout
    for name in ("latest.pt", "best.pt", "metrics.csv", "config.json"):
        assert (logdir / name).exists(), name
