"""SetFit rows through the ``setfit`` library: a sentence encoder tuned on contrastive
pairs of the labelled examples, then a logistic-regression head on its embeddings.

The library saves its head with pickle (``model_head.pkl``), which this project never
loads: a run keeps the tuned encoder as a sentence-transformers directory (``body/``,
safetensors weights, JSON configuration) and the head as ``head.skops``, loaded with only
scikit-learn's types trusted. Scoring is the same function at training time and after
loading (:class:`SetFitClassifier`), so ``predict`` reproduces the saved probabilities.
Light: setfit, sentence-transformers and torch are imported only when a model is fitted
or loaded.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from sentibench.core.errors import SentibenchError, first_line
from sentibench.core.fileio import atomic_path, atomic_write_json
from sentibench.core.progress import library_bars_off, progress
from sentibench.models.options import SetFitArgs

BODY_DIR = "body"  # the tuned sentence encoder (sentence-transformers layout)
HEAD_FILE = "head.skops"  # the logistic-regression head
CONFIG_FILE = "setfit.json"  # how the two are joined
SCORE_BATCH = 64  # texts per encoding batch, the same when training and predicting
EXTRA = 'pip install "sentibench[setfit]"'


def import_setfit() -> Any:
    """The ``setfit`` module, or one line saying how to install it (a broken install is
    named by its own first line, since reinstalling is the same remedy)."""
    try:
        import setfit
    except ImportError as exc:
        raise SentibenchError(f"SetFit rows need the setfit library ({first_line(exc)}): "
                              f"{EXTRA}") from None
    return setfit


def resolve_device(name: str) -> str:
    """``auto``: CUDA, then MPS, then the CPU; any other name as given."""
    if name != "auto":
        return name
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


class SetFitClassifier:
    """A tuned encoder and its fitted head, scored like a scikit-learn estimator on texts
    (``predict_proba``, ``classes_``), so every caller that scores a bag-of-words pipeline
    scores it too."""

    def __init__(self, body: Any, head: Any, normalize: bool = False) -> None:
        self.body, self.head, self.normalize = body, head, normalize

    @property
    def classes_(self) -> np.ndarray:
        return self.head.classes_

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """The head's probabilities for the encoder's embeddings of ``texts``."""
        embeddings = self.body.encode(list(texts), batch_size=SCORE_BATCH,
                                      normalize_embeddings=self.normalize,
                                      convert_to_numpy=True, show_progress_bar=False)
        return self.head.predict_proba(embeddings)

    def params(self) -> int:
        """Parameters of the encoder and the head (all of them were trained)."""
        body = sum(p.numel() for p in self.body.parameters())
        return int(body + np.size(self.head.coef_) + np.size(self.head.intercept_))

    def save(self, run_dir: Path) -> None:
        """``body/`` (safetensors), ``head.skops`` and ``setfit.json``; no pickle."""
        from sentibench.models.baselines import skops_io

        with library_bars_off():
            self.body.save(str(Path(run_dir) / BODY_DIR), create_model_card=False,
                           safe_serialization=True)
        with atomic_path(Path(run_dir) / HEAD_FILE) as tmp:
            skops_io().dump(self.head, tmp)
        atomic_write_json(Path(run_dir) / CONFIG_FILE,
                          {"normalize_embeddings": self.normalize,
                           "max_seq_length": int(self.body.max_seq_length)})


def _load_body(source: str, device: str) -> Any:
    """A sentence-transformers encoder from a local directory, offline, never running code
    the directory ships."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(source, device=device, local_files_only=True,
                                   trust_remote_code=False)
    except (OSError, ValueError, RuntimeError) as exc:
        raise SentibenchError(f"{source}: cannot load a sentence-transformers model "
                              f"({first_line(exc)})") from None


def _step_progress() -> Any:
    """The encoder's training steps through the project's progress (a bar on a terminal, a
    line every tenth of the steps in a log) instead of the library's bar, whose every redraw
    became text in a bench's log file."""
    from transformers import TrainerCallback

    class StepProgress(TrainerCallback):
        bar: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar = progress(total=state.max_steps, desc="setfit encoder", unit="step")

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar.update(1)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar.close()

    return StepProgress()


def fit_setfit(args: SetFitArgs, source: str, texts: list[str], labels: list[int],
               weights: list[float] | None = None) -> tuple[SetFitClassifier, float]:
    """Tune the encoder from ``source`` on pairs of ``texts`` and fit the head; the
    classifier and the seconds training took. ``weights``: per-class weights of the head.
    The libraries' own bars (loading weights, mapping pairs) are off: the encoder's steps
    are the progress shown."""
    import_setfit()
    with library_bars_off():
        return _fit(args, source, texts, labels, weights)


def _fit(args: SetFitArgs, source: str, texts: list[str], labels: list[int],
         weights: list[float] | None) -> tuple[SetFitClassifier, float]:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments
    from sklearn.linear_model import LogisticRegression
    from transformers import ProgressCallback, set_seed

    set_seed(args.seed)  # the head and the encoder's dropout, before either exists
    body = _load_body(source, resolve_device(args.device))
    body.max_seq_length = args.max_length  # the library's max_length reaches the head only
    head = LogisticRegression(C=args.C, max_iter=1000, random_state=args.seed,
                              class_weight=dict(enumerate(weights)) if weights else None)
    model = SetFitModel(model_body=body, model_head=head)
    steps, capped = encoder_steps(args, len(texts))  # the library's max_steps is exact: a
    # cap that does not bind would repeat the pairs until it is reached
    with tempfile.TemporaryDirectory(prefix="setfit-") as scratch:
        training = TrainingArguments(
            output_dir=scratch, batch_size=args.batch_size, num_epochs=args.num_epochs,
            num_iterations=args.num_iterations, max_steps=steps if capped else -1,
            body_learning_rate=args.body_learning_rate, max_length=args.max_length,
            seed=args.seed, report_to="none", logging_strategy="no", logging_first_step=False,
            save_strategy="no", eval_strategy="no", show_progress_bar=False)
        trainer = Trainer(model=model, args=training, callbacks=[_step_progress()],
                          train_dataset=Dataset.from_dict({"text": texts, "label": labels}))
        trainer.st_trainer.remove_callback(ProgressCallback)  # ours instead: see above
        t0 = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - t0
    return SetFitClassifier(model.model_body, model.model_head, model.normalize_embeddings), \
        seconds


def load_setfit(run_dir: str | Path, device: str = "cpu") -> SetFitClassifier:
    """A saved SetFit run: its encoder from safetensors, its head from skops (scikit-learn
    types only)."""
    import_setfit()  # the same one line as training when the extra is missing
    from sentibench.models.baselines import skops_io

    root = Path(run_dir)
    config_path, head_path = root / CONFIG_FILE, root / HEAD_FILE
    if not config_path.is_file() or not head_path.is_file():
        raise SentibenchError(f"{run_dir}: no {CONFIG_FILE} / {HEAD_FILE} (not a SetFit run)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    sio = skops_io()
    try:
        found = sio.get_untrusted_types(file=head_path)
    except Exception as exc:  # skops raises zip, JSON and key errors for a damaged file
        raise SentibenchError(f"{head_path}: not a readable skops file "
                              f"({type(exc).__name__})") from None
    if found:
        raise SentibenchError(f"{head_path}: refusing to load unexpected types "
                              f"{', '.join(sorted(found))}")
    head = sio.load(head_path, trusted=[])
    if not hasattr(head, "predict_proba"):
        raise SentibenchError(f"{head_path}: holds a {type(head).__name__}, not a classifier")
    body = _load_body(str(root / BODY_DIR), device)
    body.max_seq_length = int(config.get("max_seq_length", body.max_seq_length))
    return SetFitClassifier(body, head, bool(config.get("normalize_embeddings", False)))


def encoder_steps(args: SetFitArgs, train_rows: int) -> tuple[int, bool]:
    """Batches of pairs the encoder trains on, and whether ``max_steps`` cut them: the
    library draws ``num_iterations`` similar and as many dissimilar pairs per example, for
    each of ``num_epochs`` passes."""
    pairs = 2 * args.num_iterations * train_rows
    steps = -(-pairs // args.batch_size) * args.num_epochs
    if args.max_steps and args.max_steps < steps:
        return args.max_steps, True
    return steps, False


def training_sentences(args: SetFitArgs, train_rows: int) -> int:
    """Texts the encoder's training passes through it, two per pair (``bench --dry-run``)."""
    return 2 * encoder_steps(args, train_rows)[0] * args.batch_size


def describe(args: SetFitArgs, source: str) -> dict[str, Any]:
    """What results.json records of the row's settings."""
    return {"checkpoint": source, **asdict(args)}
