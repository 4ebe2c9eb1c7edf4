"""The training loop end to end: experiments run, resume after kill -9 is exact, SIGTERM checkpoints, the
same losses on 1 device, 8 simulated devices and 2 processes, one trace, host syncs only when logging."""

import glob
import importlib.util
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import pytest

import alignjax.train.loop as loop_module
from alignjax import kinds
from alignjax.config_errors import ConfigError
from alignjax.preflight import check_stages
from alignjax.run import run, stages
from alignjax.train.config_checks import check_config

from conftest import REPO_ROOT

TOY = os.path.join(REPO_ROOT, "experiments", "sft_toy.py")


def _load_experiment(path):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _experiment_variants():
    """(file, method) for every experiment file and every method of its `METHODS` table ("" when it has none)."""
    for path in sorted(glob.glob(os.path.join(REPO_ROOT, "experiments", "*.py"))):
        methods = getattr(_load_experiment(path), "METHODS", {"": None})
        yield from ((path, method) for method in methods)


EXPERIMENT_VARIANTS = list(_experiment_variants())


def _cli(workdir, *overrides, devices=1, env=None):
    """The README's command line, in a fresh process with `devices` simulated CPU devices."""
    command = [sys.executable, "-m", "alignjax.run", f"--config={TOY}", f"--config.train.workdir={workdir}"]
    command += [
        "--config.train.answers_to_print=0", "--config.train.eval_every=0", "--config.train.export_hf=False",
        "--config.data.max_examples=2000", *overrides,
    ]
    full_env = {**os.environ, "JAX_NUM_CPU_DEVICES": str(devices), "JAX_PLATFORMS": "cpu", **(env or {})}
    return command, full_env


class _Cli:
    """The command line, started in the background; its output goes to a log file beside `workdir`.

    A test that needs several runs starts them together: a run spends most of its time on one core (Python
    imports, XLA compiles), so two at a time use a 2-core machine twice as well. `output()` waits for the run.
    """

    def __init__(self, workdir, *overrides, devices=1, env=None, log_name=None):
        command, full_env = _cli(workdir, *overrides, devices=devices, env=env)
        self.workdir = workdir
        self.log = workdir.parent / (log_name or f"{workdir.name}.log")
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(command, env=full_env, stdout=log, stderr=subprocess.STDOUT, text=True)

    def output(self, timeout=300):
        """Waits for the run; its stdout and stderr, once it has exited with status 0."""
        try:
            self.process.wait(timeout=timeout)
        finally:
            self.stop()
        output = self.log.read_text()
        assert self.process.returncode == 0, output[-3000:]
        return output

    def losses(self):
        self.output()
        return _losses(self.workdir)

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _losses(workdir):
    """Per-step training loss from metrics.jsonl; a step logged twice (before a crash and after) keeps the last."""
    losses = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            record = json.loads(line)
            if "train/loss" in record:
                losses[record["step"]] = record["train/loss"]
    return losses


# The variants trained end to end: one per code path (reference or none, pairs, ranked lists, unpaired answers,
# control tags; group advantages, rejection sampling, SFT on the best). The other variants change a loss or an
# advantage that their own tests cover against the papers' formulas, and PPO's and online DPO's loops run in
# test_rl_loop.py; for those the experiment's config is built and checked as a run checks it before starting.
TRAINED = {"", "dpo", "simpo", "pro", "kto", "conditional_sft", "grpo", "rso", "expert_iteration"}
# LLMBar's meta-evaluation runs end to end through the real server in test_eval_judges.py; here it is checked.
CHECKED_ONLY = {"llmbar_meta_eval.py"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "path, method", EXPERIMENT_VARIANTS, ids=[f"{os.path.basename(p)}:{m}" for p, m in EXPERIMENT_VARIANTS]
)
def test_every_experiment_variant_is_valid_and_one_per_code_path_trains(path, method, tmp_path, previous_stages):
    module = _load_experiment(path)
    assert module.__doc__ and "python -m alignjax.run" in module.__doc__
    config = module.get_config(f"{method},smoke")
    config.train.workdir = str(tmp_path)
    config.mesh.data = 1
    config.mesh.fsdp = jax.device_count()
    earlier = config
    while "previous_stage" in earlier:  # the earlier stages train first, unless another experiment trained them
        earlier = earlier.previous_stage
        earlier.train.workdir = str(previous_stages / os.path.basename(earlier.train.workdir))
    if method not in TRAINED or os.path.basename(path) in CHECKED_ONLY:
        check_stages(stages(config))
        return
    final = run(config)
    if config.kind == "best_of_n":  # an evaluation: it trains and exports nothing
        assert set(final) >= {"reward@1", "reward@16"} and os.path.exists(tmp_path / "best_of_n.png")
        return
    if config.kind in ("eval", "meta_eval"):  # a report of what the judges said
        assert final and os.path.exists(tmp_path / "report.json") and os.path.exists(tmp_path / "report.md")
        return
    assert _losses(str(tmp_path))
    assert os.path.exists(tmp_path / "hf" / "config.json")


@pytest.mark.slow
def test_one_trace_and_host_syncs_only_when_logging(tmp_path, monkeypatch, train_step_traces):
    fetches = []
    original_get = jax.device_get

    def counting_get(x):
        fetches.append(1)
        return original_get(x)

    monkeypatch.setattr(loop_module.jax, "device_get", counting_get)
    config = _load_experiment(TOY).get_config("smoke")
    config.train.update(workdir=str(tmp_path), steps=9, log_every=3, answers_to_print=0, export_hf=False)
    config.data.max_examples = 256
    with jax.transfer_guard_device_to_host("disallow"):  # no implicit device-to-host copies anywhere
        loop_module.train(config)
    assert len(train_step_traces) == 1
    eval_batches = len(loop_module.build_data(config.data, None)[1])
    assert len(fetches) == 9 // 3 + eval_batches  # three logging steps, then the final evaluation (eval_every=0)


MESH_RUN = ("--config.train.steps=20", "--config.train.log_every=1")


@pytest.fixture(scope="module")
def one_device_run(tmp_path_factory):
    """The 1-device run that the 8-device and the 2-process runs reproduce: started when the first of them
    starts, beside its own processes, and shared by both."""
    run = _Cli(tmp_path_factory.mktemp("one_device") / "run", *MESH_RUN, "--config.train.checkpoint_every=0")
    yield run
    run.stop()


@pytest.mark.slow
def test_eight_devices_give_the_same_losses_as_one(tmp_path, one_device_run):
    eight = _Cli(
        tmp_path / "eight", *MESH_RUN, "--config.train.checkpoint_every=0", "--config.mesh.data=2",
        "--config.mesh.fsdp=2", "--config.mesh.tensor=2", devices=8,
    )
    one, eight = one_device_run.losses(), eight.losses()
    assert sorted(one) == list(range(1, 21))
    assert max(abs(one[s] - eight[s]) for s in one) < 1e-5


@pytest.mark.slow
def test_two_processes_reproduce_one(tmp_path, one_device_run):
    """2 processes of 2 devices each (checkpointing together) give the 1-device run's losses."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    processes = [
        _Cli(
            tmp_path / "multi", *MESH_RUN, "--config.train.checkpoint_every=5", "--config.distributed.enabled=True",
            f"--config.distributed.coordinator_address=127.0.0.1:{port}",
            "--config.distributed.num_processes=2", f"--config.distributed.process_id={process_id}",
            devices=2, env={"JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo"}, log_name=f"process_{process_id}.log",
        )
        for process_id in range(2)
    ]
    try:
        for p in processes:
            p.output()
    finally:
        for p in processes:
            p.stop()
    single, multi = one_device_run.losses(), _losses(tmp_path / "multi")
    assert sorted(multi) == list(range(1, 21))
    assert max(abs(single[s] - multi[s]) for s in single) < 1e-5
    assert 20 in [int(d) for d in os.listdir(tmp_path / "multi" / "checkpoints") if d.isdigit()]


def _wait_for_checkpoint(workdir, process, minimum_step):
    """Polls until a finalised checkpoint at or beyond `minimum_step` exists; returns its step."""
    deadline = time.time() + 240
    while time.time() < deadline:
        assert process.poll() is None, "the run ended before it could be interrupted"
        steps = [int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit()] \
            if os.path.isdir(os.path.join(workdir, "checkpoints")) else []
        if steps and max(steps) >= minimum_step:
            return max(steps)
        time.sleep(0.05)
    raise TimeoutError("no checkpoint appeared")


def _wait_for_first_loss(workdir, process):
    """Polls until the run has logged a training loss (so it has compiled its train step)."""
    path = os.path.join(workdir, "metrics.jsonl")
    deadline = time.time() + 240
    while not (os.path.exists(path) and '"train/loss"' in open(path).read()):
        assert process.poll() is None and time.time() < deadline, "the run logged no loss"
        time.sleep(0.05)


def _wait_for_loss_at(workdir, process, step):
    """Polls until the run has logged its training loss of `step`."""
    path, deadline = os.path.join(workdir, "metrics.jsonl"), time.time() + 240
    while not (os.path.exists(path) and re.search(rf'{{"step": {step}, [^\n]*"train/loss"', open(path).read())):
        assert process.poll() is None and time.time() < deadline, f"the run logged no loss at step {step}"
        time.sleep(0.02)


def _logged_once(workdir):
    """Whether metrics.jsonl holds one record per (step, train or eval)."""
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    logged = [(r["step"], [k for k in r if k != "step"][0].split("/")[0]) for r in records]
    return len(logged) == len(set(logged))


@pytest.mark.slow
def test_kill_minus_nine_or_ctrl_c_then_the_same_command_matches_an_uninterrupted_run(tmp_path):
    """Killed at a checkpoint >= 40, or Ctrl-C at a random step: the rerun resumes from the last checkpoint (the
    one Ctrl-C saved), its losses equal an uninterrupted run's, and every step is logged once although the steps
    after the checkpoint ran twice."""
    steps = 200
    args = (f"--config.train.steps={steps}", "--config.train.log_every=1", "--config.train.checkpoint_every=20")
    straight, killed, interrupted = _Cli(tmp_path / "straight", *args), None, None
    try:
        _wait_for_first_loss(tmp_path / "straight", straight.process)  # the other runs load its compiled programs
        killed = _Cli(tmp_path / "killed", *args)  # while the straight run goes on
        interrupted = _Cli(tmp_path / "interrupted", *args)
        _wait_for_checkpoint(tmp_path / "killed", killed.process, minimum_step=40)
        killed.process.send_signal(signal.SIGKILL)
        _wait_for_loss_at(tmp_path / "interrupted", interrupted.process, random.randint(5, 100))
        interrupted.process.send_signal(signal.SIGINT)
        killed.process.wait()
        assert killed.process.returncode == -signal.SIGKILL  # killed mid-run, not finished
        interrupted.process.wait(timeout=120)
        stopped = interrupted.log.read_text()
        assert interrupted.process.returncode == 130, stopped[-3000:]
        resumed = {
            name: _Cli(tmp_path / name, *args, log_name=f"{name}_resumed.log") for name in ("killed", "interrupted")
        }
        resumed = {name: cli.output() for name, cli in resumed.items()}
        straight_losses = straight.losses()
    finally:
        for cli in (straight, killed, interrupted):
            if cli:
                cli.stop()
    match = re.search(r"resumed from .* step (\d+)", resumed["killed"])
    assert match and 40 <= int(match.group(1)) < steps
    saved = int(re.search(r"Ctrl-C: saved checkpoint at step (\d+); rerun the same command", stopped).group(1))
    assert "Traceback" not in stopped and f"{tmp_path}/interrupted/checkpoints step {saved}" in resumed["interrupted"]
    for name in ("killed", "interrupted"):
        assert _logged_once(tmp_path / name), name
        losses = _losses(tmp_path / name)
        assert sorted(losses) == sorted(straight_losses) == list(range(1, steps + 1))
        assert max(abs(straight_losses[s] - losses[s]) for s in straight_losses) < 1e-6, name


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    args = ("--config.train.steps=100000", "--config.train.log_every=100", "--config.train.checkpoint_every=50")
    command, env = _cli(tmp_path, *args)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first = _wait_for_checkpoint(tmp_path, process, minimum_step=50)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output[-3000:]
    assert "SIGTERM: saved checkpoint" in output
    saved = [int(d) for d in os.listdir(tmp_path / "checkpoints") if d.isdigit()]
    assert max(saved) >= first


@pytest.mark.slow
def test_mistyped_override_is_an_error(tmp_path):
    command, env = _cli(tmp_path, "--config.optim.lrr=0.1")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "lrr" in result.stderr


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("optim.lr", -1.0, "optim.lr must be > 0"),
        ("optim.schedule", "step", "optim.schedule must be one of"),
        ("mesh.data", 3, "choose sizes whose product is 8"),
        ("data.batch_size", 30, "must be divisible"),
        ("loss.name", "dpoo", "loss.name must be one of"),
    ],
)
def test_bad_config_values_name_the_field(field, value, message):
    config = _load_experiment(TOY).get_config()
    section, key = field.split(".")
    config[section][key] = value
    with pytest.raises(ConfigError, match=message):
        check_config(config)


@pytest.mark.parametrize(
    "kind, loss, message",
    [
        ("preference", "sft", "set kind='sft'"),
        ("sft", "dpo", "set kind='preference'"),
        ("preference", "bradley_terry", "set kind='reward'"),
        ("sfft", "sft", "kind='sfft' is not a kind of run; expected one of"),
    ],
)
def test_the_kind_of_run_is_named_and_must_fit_the_loss(kind, loss, message):
    from alignjax.losses import loss_config

    config = _load_experiment(TOY).get_config()
    config.kind, config.loss = kind, loss_config(loss)
    with pytest.raises(ConfigError, match=message):
        kinds.get(config.kind).check(config)


def test_a_config_with_another_kinds_section_names_the_right_kind():
    rl = _load_experiment(os.path.join(REPO_ROOT, "experiments", "rl_toy.py")).get_config("smoke")
    rl.kind = "preference"  # an on-policy recipe whose kind was overwritten
    with pytest.raises(ConfigError, match=r"kind='preference' but the config has a `rl` section; set kind='rl'"):
        kinds.get(rl.kind).check(rl)
    sft = _load_experiment(TOY).get_config("smoke")
    sft.kind = "rl"
    with pytest.raises(ConfigError, match=r"kind='rl' but the config lacks a `rl` section"):
        kinds.get(sft.kind).check(sft)
    del sft["kind"]
    with pytest.raises(ConfigError, match="the config has no `kind`; expected one of"):
        run(sft)


def test_a_bad_variant_names_what_the_experiment_accepts():
    module = _load_experiment(os.path.join(REPO_ROOT, "experiments", "preference_toy.py"))
    with pytest.raises(ConfigError, match=r"unknown variant 'dpoo': expected .*'ipo'"):
        module.get_config("dpoo")
    with pytest.raises(ConfigError, match="unknown variant 'ipo,dpo'"):
        module.get_config("ipo,dpo")
    assert module.get_config("ipo,smoke").loss.name == "ipo" and module.get_config("ipo,smoke").train.steps == 2


@pytest.mark.slow
def test_fine_tunes_a_hf_directory_on_a_jsonl_file_without_held_out_data(tmp_path):
    """The path a researcher takes with their own model and data; with eval_fraction=0 nothing is evaluated."""
    from alignjax.data import load_builtin_tokenizer
    from alignjax.models import ModelConfig, init_model, save_pretrained

    tokenizer = load_builtin_tokenizer("toy_instructions")
    cfg = ModelConfig(
        architecture="LlamaForCausalLM", vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
        num_layers=1, num_heads=4, num_kv_heads=2, head_dim=8,
    )
    save_pretrained(init_model(cfg), str(tmp_path / "model"), tokenizer=tokenizer)
    rows = [{"prompt": f"reverse: {w}", "completion": w[::-1]} for w in ["cat", "dog", "owl", "emu"] * 8]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    config = _load_experiment(TOY).get_config("smoke")
    config.model.path = str(tmp_path / "model")
    config.data.update(source="json", path=str(tmp_path / "train.jsonl"), eval_fraction=0.0, max_examples=0)
    config.train.update(workdir=str(tmp_path / "run"), eval_every=1)
    assert loop_module.train(config) == {}
    assert sorted(_losses(str(tmp_path / "run"))) == [1, 2]
    assert os.path.exists(tmp_path / "run" / "hf" / "tokenizer.json")


@pytest.mark.slow
def test_fine_tunes_a_real_base_model_on_plain_prompt_completion_rows(tmp_path, stories260k_dir):
    """A base model without a chat template (stories260K) trains with data.template='plain', evaluates its
    held-out rows and prints greedy answers; nothing asks for a chat template (35 s on CPU: compiles)."""
    from alignjax.configs import base_config

    stories = ["Once upon a time, there was a little girl named Lily.", "One day, a bird sang in the park."]
    rows = [{"prompt": f"Story {i}:", "completion": " " + stories[i % 2]} for i in range(16)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = base_config()
    config.model.path = str(stories260k_dir)
    config.data.update(source="json", path=str(tmp_path / "train.jsonl"), template="plain", eval_fraction=0.25)
    config.data.update(seq_len=32, batch_size=8)
    config.train.update(steps=2, log_every=1, eval_every=0, checkpoint_every=0, answers_to_print=1, rule_prompts=0)
    config.train.update(workdir=str(tmp_path / "run"), export_hf=False)
    final = loop_module.train(config)
    assert sorted(_losses(str(tmp_path / "run"))) == [1, 2] and set(final) >= {"loss", "exact_match"}
