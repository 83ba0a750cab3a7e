"""Image and Dict observations (issue #17): CNN shapes and init, uint8 replay, the wrappers,
a Dict env end to end, unsupported spaces, the vector path unchanged, and a quick pixel run."""

import math
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import tiny_config
from gymnasium import spaces

from dreamer import cli
from dreamer.agent import DreamerAgent
from dreamer.bench import spaces as vector_spaces
from dreamer.bench import synthetic_batch
from dreamer.config import CNNConfig, EnvConfig, override
from dreamer.envs import make_env, space_info, spaces_from_info
from dreamer.networks import init_weights_
from dreamer.replay_buffer import SequenceReplayBuffer
from dreamer.train import Trainer
from dreamer.vision import ConvDecoder, ConvEncoder, MultiDecoder, MultiEncoder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ImageAndVector(gym.Env):
    """A Dict observation: a 16x16 RGB frame whose brightness and a 3-vector both count steps;
    reward 1 per step, terminates after 20."""

    metadata = {"render_modes": []}

    def __init__(self, side: int = 16, render_mode=None):
        self.side, self.render_mode = side, render_mode
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (side, side, 3), np.uint8),
                "vector": spaces.Box(-np.inf, np.inf, (3,), np.float32),
            }
        )
        self.action_space = spaces.Discrete(2)

    def _obs(self) -> dict:
        image = np.full((self.side, self.side, 3), 10 * self.t, np.uint8)
        return {"image": image, "vector": np.array([self.t, -self.t, 1.0], np.float32)}

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), 1.0, self.t >= 20, False, {}


def pixel_config(image_size: int = 16):
    config = tiny_config()
    override(config, **{"world_model.cnn.depth": 4, "env.image_size": image_size})
    return config


# -- networks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("side, stages", [(64, 4), (32, 3)])
def test_conv_encoder_halves_to_minres_and_decoder_mirrors_it(side, stages):
    cnn = CNNConfig(depth=4)
    encoder = ConvEncoder((side, side, 3), cnn)
    convs = [m for m in encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4 * 2**i for i in range(stages)]  # doubling
    image = torch.randint(0, 256, (2, 5, side, side, 3), dtype=torch.uint8)  # (B, T, H, W, C)
    embed = encoder(image)
    assert embed.shape == (2, 5, 4 * 4 * 4 * 2 ** (stages - 1)) == (2, 5, encoder.out_dim)
    decoder = ConvDecoder(20, (side, side, 3), cnn)
    assert decoder(torch.randn(2, 5, 20)).shape == (2, 5, side, side, 3)


def test_conv_layers_get_the_official_init_variance():
    """Var[W] = 1 / mean(fan_in, fan_out) with fans of channels x kernel pixels."""
    torch.manual_seed(0)
    decoder = init_weights_(ConvDecoder(64, (64, 64, 3), CNNConfig(depth=16)))
    hidden = decoder.net[0]  # ConvTranspose2d 128 -> 64, 4x4 kernel
    fan = (hidden.in_channels + hidden.out_channels) * 16 / 2
    assert hidden.weight.var().item() == pytest.approx(1 / fan, rel=0.05)
    last = decoder.net[-1]  # the output conv: uniform, same variance
    fan = (last.in_channels + last.out_channels) * 16 / 2
    assert last.weight.abs().max().item() <= math.sqrt(3 / fan)
    assert last.weight.var().item() == pytest.approx(1 / fan, rel=0.1)
    assert torch.equal(last.bias, torch.zeros_like(last.bias))


def test_multi_encoder_concatenates_and_decoder_losses_every_key():
    shapes = {"obs/image": [16, 16, 3], "obs/depth": [16, 16, 1], "obs/vector": [3]}
    cnn = CNNConfig(depth=4)
    encoder = MultiEncoder(shapes, units=8, layers=1, cnn=cnn)
    assert encoder.cnn.net[0].in_channels == 4  # the two images stacked along C
    obs = {
        "obs/image": torch.randint(0, 256, (2, 3, 16, 16, 3), dtype=torch.uint8),
        "obs/depth": torch.randint(0, 256, (2, 3, 16, 16, 1), dtype=torch.uint8),
        "obs/vector": torch.randn(2, 3, 3),
    }
    assert encoder(obs).shape == (2, 3, encoder.cnn.out_dim + 8)
    decoder = MultiDecoder(10, shapes, units=8, layers=1, cnn=cnn)
    feat = torch.randn(2, 3, 10)
    preds = decoder(feat)
    assert {k: tuple(v.shape) for k, v in preds.items()} == {
        "obs/image": (2, 3, 16, 16, 3),
        "obs/depth": (2, 3, 16, 16, 1),
        "obs/vector": (2, 3, 3),
    }
    losses = decoder.key_losses(feat, obs)
    assert set(losses) == set(shapes)
    p = {k: v.detach().double().numpy() for k, v in preds.items()}
    x = {k: v.double().numpy() for k, v in obs.items()}
    expected = {  # images: ||x^ - (x / 255 - 0.5)||^2 over H, W, C; vectors: ||x^ - symlog x||^2
        k: ((p[k] - (x[k] / 255 - 0.5)) ** 2).sum((-3, -2, -1)) for k in ("obs/image", "obs/depth")
    }
    symlog_x = np.sign(x["obs/vector"]) * np.log1p(np.abs(x["obs/vector"]))
    expected["obs/vector"] = ((p["obs/vector"] - symlog_x) ** 2).sum(-1)
    for key, value in expected.items():
        np.testing.assert_allclose(losses[key].detach().numpy(), value, rtol=1e-5, err_msg=key)
    total = decoder.loss(feat, obs)
    np.testing.assert_allclose(total.detach().numpy(), sum(expected.values()), rtol=1e-5)
    assert total.shape == (2, 3)


# -- the vector path is unchanged ----------------------------------------------------------------

# (name, shape) of every parameter and buffer of a tiny CartPole agent, as before images existed
VECTOR_MODULES_DIGEST = 6350455605224406246


def test_vector_agent_builds_the_same_modules_and_results():
    """Vector observations take the MLP encoder and decoder they always did: same modules, same
    parameters, same metrics after two updates as the code before image support."""
    torch.manual_seed(0)
    config = tiny_config()
    agent = DreamerAgent(*vector_spaces(4, 2, True), config)
    layout = tuple((k, tuple(v.shape)) for k, v in agent.state_dict().items())
    assert not any("cnn" in k for k, _ in layout)
    assert _stable_hash(repr(layout)) == VECTOR_MODULES_DIGEST
    for _ in range(2):
        metrics = agent.train_step(synthetic_batch(config, 4, 2, True))
    # measured with the code before image support (same seed, same batch)
    assert metrics["loss/dec"] == pytest.approx(3.7731, rel=1e-3)
    assert metrics["loss/rew"] == pytest.approx(5.5398, rel=1e-3)
    assert metrics["grad_norm/world_model"] == pytest.approx(12.6939, rel=1e-3)


def _stable_hash(text: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


# -- replay -------------------------------------------------------------------------------------


def test_replay_keeps_images_uint8_through_sample_and_checkpoint():
    buf = SequenceReplayBuffer(capacity=50, seq_len=4)
    for t in range(30):
        obs = {"image": np.full((8, 8, 3), t, np.uint8), "vector": np.full(2, t, np.float64)}
        buf.add(obs, np.zeros(2, np.float32), 0.0, t == 0, False)
    assert buf._data["obs/image"].dtype == np.uint8
    assert buf._data["obs/vector"].dtype == np.float32
    # 192 image bytes + 8 vector + 8 action + 4 reward + 3 flags
    assert buf.bytes_per_step() == 8 * 8 * 3 + 2 * 4 + 2 * 4 + 4 + 3
    batch = buf.sample(5, np.random.default_rng(0))
    assert batch["obs/image"].dtype == np.uint8 and batch["obs/image"].shape == (5, 4, 8, 8, 3)
    # each frame still holds its step's value, matching the vector stored beside it
    np.testing.assert_array_equal(batch["obs/image"][..., 0, 0, 0], batch["obs/vector"][..., 0])
    state = buf.state_dict()
    assert len(state["data"]["obs/image"]) == 30  # the stored steps, not the capacity
    copy = SequenceReplayBuffer(capacity=50, seq_len=4)
    copy.load_state_dict(state)
    for key in buf._data:
        np.testing.assert_array_equal(copy._data[key], buf._data[key])
        assert copy._data[key].dtype == buf._data[key].dtype


def test_agent_keeps_uint8_to_the_encoder():
    agent = DreamerAgent(spaces.Box(0, 255, (16, 16, 1), np.uint8), spaces.Discrete(2),
                         pixel_config())  # fmt: skip
    batch = agent.batch_to_torch({"obs": np.zeros((2, 3, 16, 16, 1), np.uint8),
                                  "reward": np.zeros((2, 3), np.float64)})  # fmt: skip
    assert batch["obs"].dtype == torch.uint8 and batch["reward"].dtype == torch.float32


# -- wrappers -----------------------------------------------------------------------------------


class Checkerboard(gym.Env):
    """48x48 RGB observations: a one-pixel black/white checkerboard in channel 0, 200 in 1."""

    def __init__(self):
        self.observation_space = spaces.Box(0, 255, (48, 48, 3), np.uint8)
        self.action_space = spaces.Discrete(2)

    def _obs(self):
        image = np.zeros((48, 48, 3), np.uint8)
        image[..., 0] = 255 * ((np.arange(48)[:, None] + np.arange(48)[None]) % 2)
        image[..., 1] = 200
        return image

    def reset(self, seed=None, options=None):
        return self._obs(), {}

    def step(self, action):
        return self._obs(), 0.0, False, False, {}


def test_resize_averages_areas_and_grayscale_keeps_one_channel():
    env = make_env(Checkerboard, config=EnvConfig(image_size=16))
    assert env.observation_space.shape == (16, 16, 3)
    obs, _ = env.reset()
    assert obs.shape == (16, 16, 3) and obs.dtype == np.uint8
    # each output pixel is the mean of a 3x3 block with 4 or 5 white pixels (nearest: 0 or 255)
    assert set(np.unique(obs[..., 0])) == {round(255 * 4 / 9), round(255 * 5 / 9)}
    assert np.all(obs[..., 1] == 200) and np.all(obs[..., 2] == 0)
    gray = make_env(Checkerboard, config=EnvConfig(image_size=16, color="gray"))
    assert gray.observation_space.shape == (16, 16, 1)
    assert gray.reset()[0].shape == (16, 16, 1)


def test_gray_equals_gymnasiums_float64_grayscale():
    import gymnasium as gym

    from dreamer.wrappers import gray_image

    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    env = gym.wrappers.GrayscaleObservation(Checkerboard(), keep_dim=True)
    reference = env.observation(image)  # gymnasium's own conversion, in float64
    ours = gray_image(image)
    assert ours.shape == reference.shape == (40, 60, 1) and ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, reference)
    levels = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, -1)  # neutral grays
    np.testing.assert_array_equal(gray_image(levels)[0, :, 0], np.arange(256))
    # hand value: BT.709 of (10, 200, 30) = 2.125 + 143.08 + 2.163 = 147.368 -> 147
    assert gray_image(np.array([[[10, 200, 30]]], np.uint8))[0, 0, 0] == 147


def test_pixels_renders_cartpole_frames_at_64x64():
    env = make_env("CartPole-v1", config=EnvConfig(obs="pixels"))
    assert env.observation_space == spaces.Box(0, 255, (64, 64, 3), np.uint8)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        later = env.step(1)[0]
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert obs.min() < 100 < 250 <= obs.max()  # a dark cart on a white background
    assert not np.array_equal(obs, later)  # the frame follows the state
    info = space_info(env.observation_space, env.action_space)
    assert info["obs_dim"] is None and info["obs_shapes"] == {"obs": [64, 64, 3]}
    assert space_info(*spaces_from_info(info)) == info  # what checkpoints rebuild


def test_action_repeat_sums_rewards():
    env = make_env("CartPole-v1", config=EnvConfig(action_repeat=3))
    env.reset(seed=0)
    assert env.step(0)[1] == 3.0


def test_atari_ids_get_the_official_settings():
    pytest.importorskip("ale_py")
    env = make_env("ALE/Pong-v5", seed=0)
    assert env.observation_space == spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert env.action_space == spaces.Discrete(18)  # the full action set
    assert env.unwrapped._frameskip == 1  # the wrapper skips, taking the max of two frames
    assert env.unwrapped.ale.getFloat("repeat_action_probability") == 0.25  # sticky actions
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert isinstance(env.env, gym.wrappers.MaxAndSkipObservation)  # 4 frames per action


# -- a Dict env end to end ------------------------------------------------------------------------


def test_dict_env_trains_and_acts(tmp_path):
    config = pixel_config(image_size=16)
    t = config.train
    t.steps, t.prefill, t.eval_every, t.eval_episodes, t.log_every = 60, 20, 60, 2, 20
    t.train_ratio = 16  # an update every other step
    trainer = Trainer(ImageAndVector, config, str(tmp_path / "run"), progress=False, threads=1)
    assert trainer.agent.spaces["obs_shapes"] == {"obs/image": [16, 16, 3], "obs/vector": [3]}
    result = trainer.run()
    assert result.updates > 0 and result.final_eval == 20.0  # every episode lasts 20 steps
    data = trainer.replay._data
    assert data["obs/image"].dtype == np.uint8 and data["obs/vector"].dtype == np.float32
    # the frame and the vector of a stored step describe the same time step
    n = len(trainer.replay)
    np.testing.assert_array_equal(data["obs/image"][:n, 0, 0, 0], 10 * data["obs/vector"][:n, 0])
    loaded = DreamerAgent.from_checkpoint(tmp_path / "run" / "latest.pt")
    env = ImageAndVector()
    action = loaded.act(env.reset()[0], is_first=True)
    assert action in (0, 1)


# -- errors --------------------------------------------------------------------------------------


def test_open_loop_images_reconstructs_the_context_and_dreams_from_the_prior():
    """Video prediction (04): uint8 (T, H, W, C) frames; the context frames are decoded
    posterior states, and the dreamed frames depend on the actions only, never on a frame
    after the context."""
    from dreamer.analysis import collect_episode, open_loop_images

    env = ImageAndVector()
    agent = DreamerAgent(env.observation_space, env.action_space, pixel_config()).eval()
    wm = agent.world_model
    episode = collect_episode(env, lambda obs, is_first: None, 0, np.random.default_rng(0))
    assert episode["obs/image"].dtype == np.uint8 and episode["obs/vector"].dtype == np.float32
    assert "frames" not in episode and "obs" not in episode
    torch.manual_seed(1)  # the same latent samples for every call below
    out = open_loop_images(wm, episode, 2, 4, 6)
    assert out["context"] == 4
    for key in ("true", "dreamed", "error"):
        assert out[key].shape == (10, 16, 16, 3) and out[key].dtype == np.uint8, key
    np.testing.assert_array_equal(out["true"], episode["obs/image"][2:12])
    np.testing.assert_array_equal(
        out["error"], np.abs(out["true"].astype(int) - out["dreamed"].astype(int))
    )
    # the context frames: the posterior's states, decoded
    torch.manual_seed(1)
    with torch.no_grad():
        obs = {k: torch.as_tensor(episode[k][2:6])[None] for k in wm.obs_shapes}
        is_first = torch.zeros(1, 4)
        is_first[:, 0] = 1.0
        prev_action = torch.as_tensor(episode["prev_action"][2:6])[None]
        prev_action[:, 0] = 0.0  # the context starts from the initial state
        states, _, _ = wm.rssm.observe(wm.encoder(obs), prev_action, is_first)
        recon = wm.decoder(states.feat)["obs/image"][0]
    expected = ((recon + 0.5) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    np.testing.assert_array_equal(out["dreamed"][:4], expected)
    # the dream: other frames after the context change nothing; other context frames do
    changed = {k: v.copy() for k, v in episode.items()}
    changed["obs/image"][6:] = 255 - changed["obs/image"][6:]
    changed["obs/vector"][6:] += 100.0
    torch.manual_seed(1)
    again = open_loop_images(wm, changed, 2, 4, 6)
    np.testing.assert_array_equal(again["dreamed"], out["dreamed"])
    changed["obs/image"][2:6] = 255 - changed["obs/image"][2:6]
    torch.manual_seed(1)
    assert not np.array_equal(open_loop_images(wm, changed, 2, 4, 6)["dreamed"], out["dreamed"])
    with pytest.raises(ValueError, match="exceeds the episode"):
        open_loop_images(wm, episode, 15, 4, 6)


class DiscreteInDict(ImageAndVector):
    def __init__(self, render_mode=None):
        super().__init__()
        self.observation_space = spaces.Dict({"count": spaces.Discrete(3)})


class MultiBinaryActions(ImageAndVector):
    def __init__(self, render_mode=None):
        super().__init__()
        self.action_space = spaces.MultiBinary(2)


@pytest.mark.parametrize(
    "factory, message",
    [
        (DiscreteInDict, "Dict with key 'count' of type Discrete"),
        (MultiBinaryActions, "unsupported action space MultiBinary"),
    ],
)
def test_unsupported_spaces_fail_with_one_line(factory, message, capsys):
    status = _cli_with_factory(factory)
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err


def _cli_with_factory(factory) -> int:
    """cli.main on a registered id for `factory` (what `--env module:Id-v0` registers)."""
    env_id = f"Test{factory.__name__}-v0"
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=factory)
    return cli.main(["--env", env_id, "--no-progress", "--threads", "1"])


class RendersNothing(ImageAndVector):
    def render(self):
        return None


def test_pixels_need_rgb_array_rendering():
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        make_env(ImageAndVector, config=EnvConfig(obs="pixels"))
    with pytest.raises(ValueError, match="RendersNothing cannot render"):
        make_env(lambda: RendersNothing(render_mode="rgb_array"), config=EnvConfig(obs="pixels"))


class RendersWithoutItsPackage(ImageAndVector):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def render(self):  # what classic control raises when pygame is not installed
        raise gym.error.DependencyNotInstalled("pygame is not installed, run `pip install ...`")


def test_pixels_without_the_render_package_fail_with_one_line(capsys):
    env_id = "TestRendersWithoutItsPackage-v0"
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=RendersWithoutItsPackage)
    status = cli.main(["--env", env_id, "--pixels", "--no-progress", "--threads", "1"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "pygame is not installed" in lines[0], err


# -- a pixel run through the command line ----------------------------------------------------


def test_pixel_script_quick_run(tmp_path):
    """07 --quick for 600 steps: CartPole from 32x32 gray frames; replay holds uint8 frames."""
    logdir = tmp_path / "px"
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "07_dreamer_pixels.py"), "--quick", "--steps", "600",
         "--no-progress", "--threads", "1", "--logdir", str(logdir)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": ROOT},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    state = torch.load(logdir / "latest.pt", weights_only=False)
    frames = state["replay"]["data"]["obs"]
    assert frames.dtype == np.uint8 and frames.shape[1:] == (32, 32, 1)
    assert state["agent"]["spaces"]["obs_shapes"] == {"obs": [32, 32, 1]}
    with open(logdir / "metrics.csv") as f:
        header, *rows = f.read().splitlines()
    dec = header.split(",").index("loss/dec")
    assert any(row.split(",")[dec] for row in rows)  # the world model trained


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["ALE/Pong-v5", "CarRacing-v3"])
def test_image_env_quick_runs(env_id, tmp_path):
    """The issue's bar: Atari and CarRacing (96x96 frames, Box actions) run end to end; about
    2 and 5 minutes here (long evaluation episodes)."""
    if env_id.startswith("ALE/"):
        pytest.importorskip("ale_py")
    out = subprocess.run(
        [sys.executable, "-m", "dreamer", "--env", env_id, "--quick", "--no-progress",
         "--threads", "1", "--logdir", str(tmp_path / "run")],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
        env={**os.environ, "PYTHONPATH": ROOT},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "run" / "result.json").exists()


def test_visualize_draws_the_video_prediction_of_a_pixel_run(tmp_path):
    """04 on a 07 --quick checkpoint (400 steps, 32x32 gray frames): the open-loop video
    prediction as a PNG strip and a GIF, and the t-SNE; about 30 s here."""
    logdir, vis = tmp_path / "px", tmp_path / "vis"
    env = {**os.environ, "PYTHONPATH": ROOT}
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "07_dreamer_pixels.py"), "--quick", "--steps", "400",
         "--no-progress", "--threads", "1", "--logdir", str(logdir)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "04_visualize.py"), "--quick", "--checkpoint",
         str(logdir / "latest.pt"), "--outdir", str(vis)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ("tsne.png", "open_loop.png", "open_loop.gif"):
        assert (vis / name).stat().st_size > 1000, name
    assert not (vis / "dream.png").exists()  # the vector figures are not drawn for images
    from PIL import Image

    with Image.open(vis / "open_loop.gif") as gif:
        assert gif.n_frames > 5  # context frames, then the dream


def test_world_model_demo_from_pixels(tmp_path):
    """01 --quick --pixels: a world model on 32x32 gray CartPole frames draws the video
    prediction and the pixel error by horizon; about 45 s here."""
    logdir = tmp_path / "wm"
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "01_world_model_demo.py"), "--quick", "--pixels",
         "--threads", "1", "--logdir", str(logdir)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": ROOT},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "XDG_RUNTIME_DIR" not in out.stderr
    for name in ("open_loop.png", "open_loop.gif", "error_horizon.png", "losses.png"):
        assert (logdir / name).stat().st_size > 1000, name
    state = torch.load(logdir / "world_model.pt", weights_only=False)
    assert state["spaces"]["obs_shapes"] == {"obs": [32, 32, 1]}


def test_visualize_a_checkpoint_for_other_spaces_is_one_line(tmp_path):
    """A checkpoint that does not fit its env is a clean error naming the file, no traceback."""
    from dreamer.config import DreamerConfig, config_to_dict

    path = tmp_path / "image-agent.pt"
    torch.save({"config": config_to_dict(DreamerConfig()), "spaces": {"obs_dim": None}}, path)
    script = os.path.join(ROOT, "04_visualize.py")
    out = subprocess.run([sys.executable, script, "--checkpoint", str(path)],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [f"error: {path}: not a dreamer agent checkpoint"]


def test_an_env_that_takes_no_render_mode_is_a_one_line_error():
    from dreamer.envs import make_env

    class NoRender(gym.Env):
        observation_space = spaces.Box(-1, 1, (2,), np.float32)
        action_space = spaces.Discrete(2)

        def __init__(self):  # no render_mode argument
            super().__init__()

    gym.register("NoRenderTest-v0", entry_point=NoRender)
    with pytest.raises(ValueError, match="NoRenderTest-v0.*render_mode='rgb_array'"):
        make_env("NoRenderTest-v0", render_mode="rgb_array")
    make_env("NoRenderTest-v0")  # without frames it is a fine env


def test_a_pixel_run_has_its_own_default_directory():
    from dreamer.cli import run_name

    config = tiny_config()
    assert (run_name(config, False), run_name(config, True)) == ("default", "quick")
    config.env.obs = "pixels"  # 07 or --pixels: not runs/CartPole-v1/default-seed0 of 02
    assert (run_name(config, False), run_name(config, True)) == ("pixels", "pixels-quick")
