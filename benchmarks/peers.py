"""The torch side of the benchmarks: the shared model every run starts from, and what the peers' workers share
(TRL's trainers set up as alignjax trains, their step clock and losses, `transformers` models, the records'
environment fields).

torch, transformers, datasets and trl are imported inside the functions: alignjax's workers import this module
too, and must not pay for them.
"""

from __future__ import annotations

import importlib
import os

from benchmarks.harness import TORCH_SEED, Setup, StepClock


def toy_vocab_size() -> int:
    """The vocabulary size of the default experiment's toy tokenizer (96 without the data package)."""
    try:
        from alignjax.data.builtin import toy_instructions

        return len(toy_instructions.tokenizer())
    except ImportError:  # the data package is optional here; any small vocabulary exercises the same code
        return 96


def save_llama(directory: str, spec: dict, max_positions: int):
    """Builds the `spec` Llama (one of `harness.LLAMAS`) in `transformers` from the fixed torch seed and saves it to
    `directory` in HF format; returns the torch model (eos 1, pad 0, no bos)."""
    import torch
    import transformers

    config = transformers.LlamaConfig(
        vocab_size=spec["vocab"] or toy_vocab_size(),
        hidden_size=spec["hidden"],
        intermediate_size=spec["intermediate"],
        num_hidden_layers=spec["layers"],
        num_attention_heads=spec["heads"],
        num_key_value_heads=spec["kv_heads"],
        max_position_embeddings=max_positions,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=spec["tied"],
        bos_token_id=None,
        eos_token_id=1,
        pad_token_id=0,
    )
    torch.manual_seed(TORCH_SEED)
    model = transformers.LlamaForCausalLM(config)
    model.save_pretrained(directory)
    return model


def n_params(model) -> int:
    """The torch model's parameters (a tied embedding counts once)."""
    return sum(p.numel() for p in model.parameters())


def load_model(workdir: str):
    """The saved model in `transformers`, float32."""
    import torch
    import transformers

    return transformers.AutoModelForCausalLM.from_pretrained(os.path.join(workdir, "model"), dtype=torch.float32)


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def environment(model, *versions: str) -> dict:
    """The device, threads and versions fields of a torch peer's record; `versions`: more "name version" strings
    (the peer's own packages and settings), listed before the model's attention implementation."""
    import torch
    import transformers

    return {
        "device": f"cuda:{torch.cuda.get_device_name()}" if torch.cuda.is_available() else "cpu",
        "threads": f"torch intra-op {torch.get_num_threads()}, inter-op {torch.get_num_interop_threads()}",
        "allocator_env": {name: value for name, value in os.environ.items() if name.startswith("MALLOC_")},
        "versions": ", ".join(
            [
                f"torch {torch.__version__}",
                f"transformers {transformers.__version__}",
                *versions,
                f"attn {model.config._attn_implementation}",
            ]
        ),
    }


def torch_sync() -> None:
    """Waits for queued GPU work, so a timestamp taken next covers it (nothing to wait for on CPU)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def id_tokenizer(vocab_size: int):
    """A `transformers` tokenizer that reads back token ids written by `ids_to_text` (one word per id, split on
    whitespace; "<pad>" is 0, "<eos>" 1), for peers that want text or a tokenizer where the benchmark has ids."""
    import tokenizers
    import transformers

    vocab = {"<pad>": 0, "<eos>": 1, **{f"t{i}": i for i in range(2, vocab_size)}}
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=vocab, unk_token="<pad>"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>")


def ids_to_text(ids) -> str:
    """The `id_tokenizer` text of `ids`: one word per id, separated by single spaces."""
    return " ".join("<pad>" if i == 0 else "<eos>" if i == 1 else f"t{i}" for i in ids)


# ---------------------------------------------------------------------------------------------------------------
# TRL's trainers.


def start_trl(threads: int) -> Setup:
    """Imports torch, transformers, datasets and trl, sets torch's threads, turns progress bars off, then starts
    timing the worker's setup."""
    for name in ("datasets", "torch", "transformers", "trl"):
        importlib.import_module(name)
    import datasets

    set_threads(threads)
    datasets.disable_progress_bars()
    os.environ["TQDM_DISABLE"] = "1"
    return Setup()


def trl_matched_arguments(lr: float, use_cpu: bool) -> dict:
    """The `transformers.TrainingArguments` that make a TRL trainer do what the alignjax step does: AdamW (betas
    0.9 / 0.95, eps 1e-8, no weight decay) at a constant `lr` without warmup, clipping at 1.0, float32 without
    gradient checkpointing (TRL defaults both bf16 and checkpointing on), the batches in order, nothing logged,
    saved or evaluated."""
    return {
        "learning_rate": lr,
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "adam_beta1": 0.9,
        "adam_beta2": 0.95,
        "adam_epsilon": 1e-8,
        "weight_decay": 0.0,
        "max_grad_norm": 1.0,
        "gradient_checkpointing": False,
        "bf16": False,
        "fp16": False,
        "use_cpu": use_cpu,
        "train_sampling_strategy": "sequential",
        "dataloader_drop_last": True,
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": False,
        "eval_strategy": "no",
        "save_strategy": "no",
        "logging_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "seed": 0,
    }


def trl_trainer(trainer_cls, config_cls, workdir: str, lr: float, config: dict, **trainer_kwargs):
    """A TRL trainer of `trainer_cls` whose optimizer steps are timed, and its `StepClock`.

    Its config (`config_cls`) holds `config` (the steps, the batch, the method's own fields), one batch per step
    and `trl_matched_arguments`. `trainer_kwargs`: the model, the dataset, the tokenizer (`processing_class`)...
    The trainer keeps each step's loss: `trainer.losses()` after training.
    """
    import torch
    import transformers

    config = config_cls(
        output_dir=os.path.join(workdir, "trl_out"),
        gradient_accumulation_steps=1,
        **config,
        **trl_matched_arguments(lr, use_cpu=not torch.cuda.is_available()),
    )
    clock = StepClock()

    class StepTimer(transformers.TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            clock.begin()

        def on_step_end(self, args, state, control, **kwargs):
            torch_sync()
            clock.end()

    trainer = _loss_recording(trainer_cls)(args=config, callbacks=[StepTimer()], **trainer_kwargs)
    return trainer, clock


def _loss_recording(trainer_cls):
    """`trainer_cls` (a `transformers.Trainer`) keeping each training step's loss tensor (no extra host sync:
    `losses()` converts them after training)."""

    class Recording(trainer_cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.step_losses = []

        def training_step(self, *args, **kwargs):
            loss = super().training_step(*args, **kwargs)
            self.step_losses.append(loss.detach())
            return loss

        def losses(self) -> list[float]:
            return [float(x) for x in self.step_losses]

    Recording.__name__ = f"Recording{trainer_cls.__name__}"
    return Recording


def trl_environment(trainer) -> dict:
    """`environment` of a TRL trainer's model, with TRL's version and the optimizer it ran."""
    import trl

    return environment(trainer.model, f"trl {trl.__version__}", f"optim {trainer.args.optim}")
