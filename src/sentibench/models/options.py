"""Model options: what a user may set about the model itself, per family, declared once.

The CLI's flags, ``bench --set`` keys, results.json and resume all derive from these
dataclasses (see :mod:`sentibench.core.options`). Defaults are the reference's.
"""

from __future__ import annotations

from dataclasses import dataclass

from sentibench.core.errors import SentibenchError
from sentibench.core.options import option, validate
from sentibench.models import TOKEN_POSITIONS, TRAINABLE_LAYERS

CONTEXT_KEYWORDS = ("longest_training_example", "model_context_length")


@dataclass
class GPTArgs:
    """The reference's train_gpt.py model flags, with its defaults."""

    model_size: str = option(
        "gpt2-small (124M)", "'gpt2-small (124M)', 'gpt2-medium (355M)', 'gpt2-large (774M)', "
        "'gpt2-xl (1558M)', a Hub repo id or a local directory", snake=True)
    weights: str = option("pretrained", "OpenAI's weights, or a random initialisation",
                          choices=("pretrained", "random"))
    trainable_layers: str = option(
        "last_block", "all; last_block (last block + final norm + head); last_two_blocks; "
                      "last_layer (head); "
                      "lora (low-rank adapters on the frozen layers + head)",
        choices=TRAINABLE_LAYERS, snake=True)
    trainable_token_pos: str = option(
        "last", "last: each review's true last token; first: position 0; last_padded: "
        "position -1 of a sequence padded to the context length (the reference)",
        choices=TOKEN_POSITIONS, snake=True)
    average_embeddings: bool = option(
        False, "classify the mean of the token outputs instead of one position", snake=True)
    context_length: str = option(
        "256", "N, longest_training_example or model_context_length", snake=True)
    disable_causal_mask: bool = option(
        False, "let every token attend to later tokens too (padding stays hidden, except "
               "with last_padded, as in the book's ablation row 17)", snake=True)

    def __post_init__(self) -> None:
        self.context_length = str(self.context_length)
        validate(self)
        if self.context_length not in CONTEXT_KEYWORDS:
            if not self.context_length.isdigit() or int(self.context_length) <= 0:
                raise SentibenchError(
                    f"--context_length must be a positive integer or one of "
                    f"{', '.join(CONTEXT_KEYWORDS)}, got {self.context_length!r}")


@dataclass
class HFArgs:
    """The reference's train_bert_hf.py model flags, with its defaults."""

    model: str = option("distilbert", "a registered encoder (listed above), a Hub id or a "
                                      "local directory")
    trainable_layers: str = option(
        "all", "all; last_block (last encoder layer + pooler + head); last_two_blocks; "
               "last_layer (head); "
               "lora (low-rank adapters on the frozen layers + head)",
        choices=TRAINABLE_LAYERS, snake=True)
    use_attention_mask: bool = option(True, "pass the attention mask", snake=True)
    max_length: int = option(256, "truncate reviews to N tokens", above=0)

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class BaselineArgs:
    """The registry name is the recipe; these adjust it (``bench --set``, ``tune``), and left
    at None give the recipe exactly as the reference (or our TF-IDF recipe) has it."""

    C: float | None = option(
        None, "inverse regularisation strength of the logistic regression (default: the "
              "recipe's, 1 for logreg, 50 for logreg-tfidf)", above=0, cli=False)
    ngram_max: int | None = option(
        None, "longest word n-gram the vectorizer counts (default: the recipe's, 1 for "
              "logreg, 2 for logreg-tfidf)", minimum=1, cli=False)

    def __post_init__(self) -> None:
        validate(self)


SETFIT_DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass
class SetFitArgs:
    """A SetFit row (the ``setfit`` library): the sentence encoder is first tuned on
    contrastive pairs drawn from the labelled examples, then a logistic regression is fitted
    on its embeddings. Defaults are the library's, except the step cap, which keeps a row on
    a full training split (pairs grow with examples x iterations) to minutes on a CPU."""

    model: str = option("setfit-minilm", "a registered SetFit model or a local "
                                         "sentence-transformers directory")
    num_iterations: int = option(20, "contrastive pairs drawn per training example and "
                                     "iteration (one similar, one dissimilar)", above=0)
    num_epochs: int = option(1, "passes of the encoder over the pairs", above=0)
    max_steps: int | None = option(500, "stop the encoder's training after N batches of "
                                        "pairs (none: every pair)", above=0)
    body_learning_rate: float = option(2e-5, "the encoder's learning rate (AdamW)", above=0)
    batch_size: int = option(16, "pairs per encoder training batch", above=0)
    max_length: int = option(128, "truncate texts to N tokens (training and scoring)",
                             above=0)
    C: float = option(1.0, "inverse regularisation strength of the logistic-regression head",
                      above=0)
    seed: int = option(42, "random seed of the pairs, the encoder's training and the head",
                       minimum=0)
    device: str = option("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")

    def __post_init__(self) -> None:
        validate(self)
        if self.device not in SETFIT_DEVICES and not (
                self.device.startswith("cuda:") and self.device[5:].isdigit()):
            raise SentibenchError(f"--device must be one of {', '.join(SETFIT_DEVICES)} or "
                                  f"cuda:N, got {self.device!r}")
        if self.seed >= 2 ** 32:
            raise SentibenchError(f"--seed must be 0 to {2 ** 32 - 1}, got {self.seed}")
