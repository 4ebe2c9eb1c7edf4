"""DITTO on a tiny random model: the pair sampler's batches have the configured composition per source and are a
pure function of the seed, iteration 0 holds only demonstration-over-current pairs, the reference is pi_0 unless
`update_reference`, the memory survives a checkpoint's JSON, and bad demonstrations are named by row and field."""

import json

import jax
import numpy as np
import pytest
from flax import nnx
from ml_collections import ConfigDict

from alignjax import sharding
from alignjax.data import DataError, sft_data_config
from alignjax.models import ModelConfig, from_pretrained, init_model, save_pretrained
from alignjax.rl import rl_section
from alignjax.rl.demonstrations import load_demonstrations
from alignjax.rl.ditto_pairs import SOURCES, DittoMemory, source_counts
from alignjax.rl.rewards import FunctionScorer
from alignjax.rl.rollout import RolloutWorker
from alignjax.sampling import SamplingConfig

from conftest import write_jsonl

PROMPT_LEN, ANSWER_LEN, M = 24, 10, 3
DEMONSTRATIONS = [
    {"prompt": "reverse: abc", "demonstration": "(cba)"},
    {
        "prompt": [{"role": "user", "content": "upper: xyz"}],
        "demonstration": [{"role": "assistant", "content": "(XYZ)"}],
    },
    {"prompt": "sort: dcba", "demonstration": "(abcd)"},
]


def _data(path) -> ConfigDict:
    data = sft_data_config()
    data.update(source="json", path=path, split="train", eval_fraction=0.0)
    return data


@pytest.fixture(scope="module")
def worker(tmp_path_factory, tokenizer):
    """A rollout worker over a tiny random Llama (the reference: its initial params)."""
    cfg = ModelConfig(
        architecture="LlamaForCausalLM", vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
        num_layers=1, num_heads=2, num_kv_heads=1, head_dim=16, max_position_embeddings=64,
    )
    path = str(tmp_path_factory.mktemp("ditto_policy"))
    save_pretrained(init_model(cfg, seed=0), path, tokenizer=tokenizer)
    mesh = sharding.make_mesh(devices=jax.devices()[:1])
    model = from_pretrained(path, mesh=mesh)
    return RolloutWorker(model, nnx.state(model), FunctionScorer("toy_style"), tokenizer, mesh,
                         max_prompt_len=PROMPT_LEN, max_new_tokens=ANSWER_LEN, sampling=SamplingConfig(),
                         missing_eos_penalty=0.0)


def _memory(worker, tokenizer, tmp_path, **hyperparameters) -> DittoMemory:
    path = write_jsonl(tmp_path / "demonstrations.jsonl", DEMONSTRATIONS)
    demonstrations, skipped = load_demonstrations(_data(path), tokenizer, PROMPT_LEN, ANSWER_LEN)
    assert skipped == 0 and len(demonstrations) == 3
    section = rl_section("ditto", pairs_per_step=20, **hyperparameters)
    return DittoMemory(demonstrations, section.algorithm, worker, samples_per_prompt=M)


def _add_iterations(memory, worker, count, start=0, params=None):
    params = params if params is not None else worker.ref_params
    for iteration in range(start, start + count):
        rollout, _ = worker.collect(params, memory.prompts, jax.random.key(iteration), M)
        memory.add(iteration, rollout, params)


def _answer(batch, p, k):
    """The answer tokens of pair p's response k (0: chosen) and its demonstration's index (by the prompt)."""
    mask = batch["loss_mask"][p, k] > 0
    return tuple(batch["targets"][p, k][mask])


def _demonstration_answers(memory):
    return [tuple(ids) for ids in memory.demonstrations.answer_ids]


def test_source_counts_follow_the_fractions_and_fill_with_online_pairs():
    hyperparameters = rl_section("ditto", pairs_per_step=24).algorithm
    assert source_counts(hyperparameters, 1) == {"online": 24, "replay": 0, "inter_model": 0}  # iteration 0
    assert source_counts(hyperparameters, 3) == {"online": 17, "replay": 5, "inter_model": 2}  # 0.7/0.2/0.1 of 24
    hyperparameters.update(replay=False)
    assert source_counts(hyperparameters, 3) == {"online": 22, "replay": 0, "inter_model": 2}
    hyperparameters.update(replay=True, inter_model=False, replay_fraction=0.5, online_fraction=0.4)
    assert source_counts(hyperparameters, 2) == {"online": 12, "replay": 12, "inter_model": 0}


def test_batches_have_the_configured_sources_and_are_a_function_of_the_seed(worker, tokenizer, tmp_path):
    memory = _memory(worker, tokenizer, tmp_path)
    demonstrations = _demonstration_answers(memory)
    _add_iterations(memory, worker, 1)
    first, counts = memory.minibatches(2, np.random.default_rng(0))
    assert counts == {"online_pairs": 20, "replay_pairs": 0, "inter_model_pairs": 0}
    for batch in first:  # iteration 0: the demonstration over a sample of the current policy, nothing else
        assert batch["tokens"].shape == (20, 2, PROMPT_LEN + ANSWER_LEN)
        assert np.all(batch["source_P"] == SOURCES.index("online"))
        assert all(_answer(batch, p, 0) in demonstrations for p in range(20))
        np.testing.assert_array_equal(batch["ref_logps_BK"][:, 0], memory.demo_ref_logps_D[_prompts(batch, memory)])
    _add_iterations(memory, worker, 2, start=1)
    batches, counts = memory.minibatches(3, np.random.default_rng(1))
    assert counts == {"online_pairs": 14, "replay_pairs": 4, "inter_model_pairs": 2}
    latest = {tuple(_trim(t, n)) for t, n in zip(memory.tokens_IDMT[2].reshape(-1, ANSWER_LEN),
                                                  memory.lengths_IDM[2].reshape(-1))}
    earlier = {tuple(_trim(t, n)) for t, n in zip(memory.tokens_IDMT[:2].reshape(-1, ANSWER_LEN),
                                                   memory.lengths_IDM[:2].reshape(-1))}
    for batch in batches:
        source_P = batch["source_P"]
        assert [int(np.sum(source_P == SOURCES.index(s))) for s in SOURCES] == [14, 4, 2]
        for p, source in enumerate(source_P):
            chosen, rejected = _answer(batch, p, 0), _answer(batch, p, 1)
            if SOURCES[source] == "online":
                assert chosen in demonstrations and rejected in latest
            elif SOURCES[source] == "replay":
                assert chosen in demonstrations and rejected in earlier
            else:  # a later sample over an earlier one, neither a demonstration
                assert chosen not in demonstrations and rejected in earlier
        # both answers of a pair answer the same prompt
        np.testing.assert_array_equal(batch["tokens"][:, 0, :PROMPT_LEN], batch["tokens"][:, 1, :PROMPT_LEN])
    again, _ = memory.minibatches(3, np.random.default_rng(1))
    other, _ = memory.minibatches(3, np.random.default_rng(2))
    for a, b in zip(batches, again):
        assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a["tokens"], b["tokens"]) for a, b in zip(batches, other))


def _trim(tokens, length):
    return tokens[:length]


def _prompts(batch, memory):
    """The demonstration that each pair answers, found by its (left-padded) prompt tokens."""
    padded = [np.pad(ids, (PROMPT_LEN - len(ids), 0), constant_values=memory.worker.pad_id)
              for ids in memory.prompts.token_ids]
    return np.asarray([next(d for d, p in enumerate(padded) if np.array_equal(row, p))
                       for row in batch["tokens"][:, 0, :PROMPT_LEN]])


@pytest.mark.parametrize("switch", ["replay", "inter_model"])
def test_a_source_switched_off_gives_no_pairs(worker, tokenizer, tmp_path, switch):
    memory = _memory(worker, tokenizer, tmp_path, **{switch: False})
    _add_iterations(memory, worker, 3)
    batches, counts = memory.minibatches(1, np.random.default_rng(0))
    assert counts[f"{switch}_pairs"] == 0 and not np.any(batches[0]["source_P"] == SOURCES.index(switch))


def test_without_online_resampling_only_pi0_samples_are_kept(worker, tokenizer, tmp_path):
    memory = _memory(worker, tokenizer, tmp_path, online=False)
    _add_iterations(memory, worker, 3)
    assert memory.iterations == [0]
    _, counts = memory.minibatches(1, np.random.default_rng(0))
    assert counts == {"online_pairs": 20, "replay_pairs": 0, "inter_model_pairs": 0}


def test_the_reference_stays_pi0_unless_updated(worker, tokenizer, tmp_path):
    moved = jax.tree.map(lambda x: x * 1.5, worker.ref_params)  # another policy, pi_1
    fixed = _memory(worker, tokenizer, tmp_path)
    updated = _memory(worker, tokenizer, tmp_path, update_reference=True)
    pi0_demo = fixed.demo_ref_logps_D.copy()
    np.testing.assert_array_equal(updated.demo_ref_logps_D, pi0_demo)
    for memory in (fixed, updated):
        _add_iterations(memory, worker, 1)
        _add_iterations(memory, worker, 1, start=1, params=moved)  # iteration 1 sampled by pi_1
    np.testing.assert_array_equal(fixed.demo_ref_logps_D, pi0_demo)  # pi_0 throughout
    # every kept answer's reference log-prob is its log-prob under pi_0 ...
    demo_under = {name: fixed._logps(params, fixed.demo_tokens_DT, fixed.demo_lengths_D)
                  for name, params in (("pi0", worker.ref_params), ("pi1", moved))}
    np.testing.assert_allclose(fixed.demo_ref_logps_D, demo_under["pi0"], atol=1e-4)
    np.testing.assert_allclose(
        fixed.ref_logps_IDM, fixed._logps(worker.ref_params, fixed.tokens_IDMT, fixed.lengths_IDM), atol=1e-4
    )
    # ... and with update_reference, under pi_1 (the policy of the latest iteration), samples of pi_0 included
    np.testing.assert_allclose(updated.demo_ref_logps_D, demo_under["pi1"], atol=1e-4)
    np.testing.assert_allclose(
        updated.ref_logps_IDM, updated._logps(moved, updated.tokens_IDMT, updated.lengths_IDM), atol=1e-4
    )
    assert np.abs(demo_under["pi1"] - demo_under["pi0"]).min() > 1e-3


def test_the_memory_survives_a_checkpoint_json_round_trip(worker, tokenizer, tmp_path):
    memory = _memory(worker, tokenizer, tmp_path)
    _add_iterations(memory, worker, 2)
    restored = _memory(worker, tokenizer, tmp_path)
    restored.load_state_dict(json.loads(json.dumps(memory.state_dict())))
    a, _ = memory.minibatches(2, np.random.default_rng(5))
    b, _ = restored.minibatches(2, np.random.default_rng(5))
    for x, y in zip(a, b):
        assert all(np.array_equal(x[k], y[k]) for k in x)


@pytest.mark.parametrize(
    "row, message",
    [
        ({"prompt": "reverse: abc", "demonstration": " "}, r"line 2: field 'demonstration' is an empty response"),
        ({"prompt": "reverse: abc"}, r"line 2: field 'demonstration' is missing"),
        ({"demonstration": "(cba)"}, r"line 2: expected an object with 'prompt'"),
        ({"prompt": "reverse: " + "a" * 40, "demonstration": "(a)"}, r"line 2: field 'prompt' is \d+ tokens"),
        ({"prompt": "reverse: abc", "demonstration": "(" + "a" * 20 + ")"},
         r"line 2: field 'demonstration' is 23 tokens .* more than rl.max_new_tokens=10"),
    ],
)
def test_bad_demonstrations_name_the_row_and_field(tmp_path, tokenizer, row, message):
    path = write_jsonl(tmp_path / "demonstrations.jsonl", [DEMONSTRATIONS[0], row])
    with pytest.raises(DataError, match=message):
        load_demonstrations(_data(path), tokenizer, PROMPT_LEN, ANSWER_LEN)


def test_more_demonstrations_than_the_sampler_budget_is_named(worker, tokenizer, tmp_path):
    config = ConfigDict()
    config.data = _data(write_jsonl(tmp_path / "demonstrations.jsonl", DEMONSTRATIONS))
    config.rl = rl_section("ditto", prompts_per_iteration=2, max_prompt_len=PROMPT_LEN, max_new_tokens=ANSWER_LEN)
    with pytest.raises(DataError, match=r"line 3: demonstration 3 of 3 is beyond the sampler's budget.*"
                                        r"rl.prompts_per_iteration=2; raise it to 3"):
        DittoMemory.from_config(config, tokenizer, worker)


@pytest.mark.slow
def test_the_sft_warmup_stops_below_its_loss_threshold_and_a_rerun_trains_no_further(tmp_path, tokenizer):
    from alignjax.configs import ditto as ditto_recipe
    from alignjax.train.loop import train

    from conftest import logged_losses, save_toy_chat_model

    save_toy_chat_model(tmp_path / "model", max_positions=64)
    data = _data(write_jsonl(tmp_path / "demonstrations.jsonl", DEMONSTRATIONS))
    data.update(batch_size=8, seq_len=32)

    def warmup(name, stop_below_loss):
        config = ditto_recipe.warmup(str(tmp_path / "model"), data, str(tmp_path / name), lr=1e-3, steps=4,
                                     stop_below_loss=stop_below_loss)
        config.train.update(rule_prompts=0, answers_to_print=0)
        config.mesh.data = 1
        config.mesh.fsdp = jax.device_count()
        return config

    config = warmup("stops", stop_below_loss=100.0)  # a random model's first loss (~ln 83 = 4.4) is below it
    train(config)
    assert sorted(logged_losses(config.train.workdir)) == [1]
    assert (tmp_path / "stops" / "hf" / "config.json").exists()
    train(config)  # the same command again: the checkpoint says the run stopped, so nothing more trains
    assert sorted(logged_losses(config.train.workdir)) == [1]
    config = warmup("runs", stop_below_loss=1e-3)
    train(config)
    assert sorted(logged_losses(config.train.workdir)) == [1, 2, 3, 4]


def test_the_demonstrations_are_the_few_shot_baselines_pool(tokenizer):
    """The comparison's few-shot system reads the demonstrations file as its pool of shots, and a held-out
    demonstration is the reference answer a judge may be shown."""
    from alignjax.data.builtin import toy_user_style
    from alignjax.eval import prompt_set
    from alignjax.eval.prompt_sets import load_demonstrations as few_shot_pool
    from alignjax.eval.prompt_sets import load_prompts

    conversations = few_shot_pool(prompt_set("builtin", "toy_user_style", "train"))
    rows = toy_user_style.rows("train")
    held_out = load_prompts(prompt_set("builtin", "toy_user_style", "test"))  # their demonstrations: references
    assert [p.reference for p in held_out] == [r["demonstration"] for r in toy_user_style.rows("test")]
    assert [c[-1] for c in conversations] == [{"role": "assistant", "content": r["demonstration"]} for r in rows]
    assert [c[0]["content"] for c in conversations] == [r["prompt"] for r in rows]


def test_a_base_models_demonstrations_follow_the_plain_template(tmp_path, stories260k_dir):
    """stories260K has no chat template: a demonstration is the text after the opening, then the end of text."""
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(stories260k_dir)
    rows = [{"prompt": "Once upon a time, there was a frog.", "demonstration": " His name was Pip."}]
    data = _data(write_jsonl(tmp_path / "stories.jsonl", rows))
    data.template = "plain"
    demonstrations, _ = load_demonstrations(data, tokenizer, 32, 32)
    assert demonstrations.prompts.token_ids[0] == tokenizer(rows[0]["prompt"])["input_ids"]  # BOS and the opening
    answer = demonstrations.answer_ids[0].tolist()
    assert answer[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(demonstrations.prompts.token_ids[0] + answer, skip_special_tokens=True) == (
        rows[0]["prompt"] + rows[0]["demonstration"]
    )
