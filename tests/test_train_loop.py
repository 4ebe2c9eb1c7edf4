"""The training loop end to end: every experiment variant is valid and one per code path trains, one trace, host
syncs only when logging, bad configs name their field. The command line in fresh processes (resume after kill -9,
SIGTERM, 8 devices and 2 processes) is tested in test_train_cli.py."""

import glob
import importlib.util
import json
import os

import jax
import pytest

import alignjax.train.loop as loop_module
from alignjax import kinds
from alignjax.config_errors import ConfigError
from alignjax.preflight import check_stages
from alignjax.run import run, stages
from alignjax.train.config_checks import check_config

from conftest import REPO_ROOT, logged_losses

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


# The variants trained end to end: one per code path (reference or none, pairs, ranked lists, unpaired answers,
# control tags; group advantages, rejection sampling, SFT on the best; PRO trains without a reference, as SimPO
# does). The other variants change a loss or an advantage that their own tests cover against the papers' formulas,
# and PPO's and online DPO's loops run in test_rl_loop.py; for those the experiment's config is built and checked
# as a run checks it before starting.
TRAINED = {"", "dpo", "pro", "kto", "conditional_sft", "grpo", "rso", "expert_iteration"}
# LLMBar's meta-evaluation runs end to end through the real server in test_eval_judges.py; here it is checked.
# DITTO's toy stages run from the command line in test_ditto_resume.py; its stories experiment is checked on the
# converted stories260K (the warm-up's model, which the zero-shot system shares), and the one for a user's own
# model and file on the toy task's.
CHECKED_ONLY = {"llmbar_meta_eval.py", "ditto_stories.py", "ditto.py"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "path, method", EXPERIMENT_VARIANTS, ids=[f"{os.path.basename(p)}:{m}" for p, m in EXPERIMENT_VARIANTS]
)
def test_every_experiment_variant_is_valid_and_one_per_code_path_trains(
    path, method, tmp_path, previous_stages, request
):
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
    if os.path.basename(path) == "ditto_stories.py":  # the first stage starts from the converted stories260K
        earlier.model.path = str(request.getfixturevalue("stories260k_dir"))
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
    assert logged_losses(str(tmp_path))
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
    assert sorted(logged_losses(str(tmp_path / "run"))) == [1, 2]
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
    assert sorted(logged_losses(str(tmp_path / "run"))) == [1, 2] and set(final) >= {"loss", "exact_match"}
