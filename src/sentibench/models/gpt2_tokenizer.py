"""GPT-2 byte-pair encoding through tiktoken, built from local BPE files whenever we have them.

Why tiktoken: it encodes 50k long reviews several times faster than Python tokenizers. Why our
own file reader: tiktoken's ``gpt2`` encoding downloads OpenAI's files, impossible offline,
while the same vocabulary ships with every Hugging Face GPT-2 checkpoint (``vocab.json`` +
``merges.txt``) and in OpenAI's layout (``encoder.json`` + ``vocab.bpe``). The regex and the
special token are tiktoken's own ``gpt2`` ones, so ids are identical to ``tiktoken.get_encoding
("gpt2")``.

``<|endoftext|>`` inside input text is encoded as ordinary text (tiktoken's
``encode_ordinary``): a review can never inject the special token. Its id is ``eot_id``, which
is also the padding id, as in the reference.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import tiktoken
from tiktoken_ext.openai_public import r50k_pat_str

from sentibench.core.errors import SentibenchError
from sentibench.core.fileio import atomic_write_text
from sentibench.models.hub import download_hub_file, hub_repo_id
from sentibench.models.truncation import HEAD, Truncation

ENDOFTEXT = "<|endoftext|>"
TOKENIZER_DIR_ENV = "SENTIBENCH_GPT2_TOKENIZER_DIR"
BPE_FILE_PAIRS = (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe"))


@functools.cache
def _byte_to_char() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used to write tokens in its files."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {b: chr(b) for b in printable}
    for n, b in enumerate(b for b in range(256) if b not in table):
        table[b] = chr(256 + n)
    return table


@functools.cache
def _char_to_byte() -> dict[str, int]:
    return {c: b for b, c in _byte_to_char().items()}


def _to_bytes(token: str) -> bytes:
    return bytes(_char_to_byte()[c] for c in token)


def _to_text(token: bytes) -> str:
    return "".join(_byte_to_char()[b] for b in token)


def _merge_pair(token: bytes, ranks: dict[bytes, int]) -> tuple[bytes, bytes]:
    """The two parts whose merge created ``token``: replay BPE using only lower-ranked merges."""
    parts = [token[i : i + 1] for i in range(len(token))]
    limit = ranks[token]
    while len(parts) > 2:
        pairs = enumerate(zip(parts, parts[1:], strict=False))
        rank, i = min((ranks.get(a + b, limit), i) for i, (a, b) in pairs)
        if rank >= limit:
            break
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    if len(parts) != 2:
        raise SentibenchError(f"BPE token {token!r} cannot be built from lower-ranked merges")
    return parts[0], parts[1]


def _read_bpe_files(vocab_path: Path, merges_path: Path) -> tuple[dict[bytes, int], int]:
    """Read GPT-2 BPE files into tiktoken ranks + the ``<|endoftext|>`` id, checking consistency.

    tiktoken ranks a token by its id, so the files are usable only if merge ``i`` produces
    token ``256 + i``; this is checked rather than assumed.
    """
    where = vocab_path.parent
    try:
        vocab: dict[str, int] = json.loads(vocab_path.read_text(encoding="utf-8"))
        lines = merges_path.read_text(encoding="utf-8").splitlines()
        eot_id = vocab.pop(ENDOFTEXT)
        ranks = {_to_bytes(token): rank for token, rank in vocab.items()}
        pairs = [ln.split(" ") for ln in lines if ln and not ln.startswith("#version")]
        merges = [_to_bytes(a) + _to_bytes(b) for a, b in pairs]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SentibenchError(
            f"{where}: not GPT-2 byte-level BPE files ({type(exc).__name__}: {exc})"
        ) from exc
    consistent = (
        sorted(ranks.values()) == list(range(len(ranks)))
        and len(ranks) == 256 + len(merges)
        and all(len(t) == 1 for t, r in ranks.items() if r < 256)
        and all(ranks.get(token) == 256 + i for i, token in enumerate(merges))
        and eot_id == len(ranks)
    )
    if not consistent:
        raise SentibenchError(f"{where}: {vocab_path.name} and {merges_path.name} disagree")
    return ranks, eot_id


def find_bpe_files(directory: str | os.PathLike[str]) -> tuple[Path, Path] | None:
    """The (vocab, merges) pair in ``directory``, HF names first, or None."""
    directory = Path(directory)
    for vocab_name, merges_name in BPE_FILE_PAIRS:
        vocab, merges = directory / vocab_name, directory / merges_name
        if vocab.is_file() and merges.is_file():
            return vocab, merges
    return None


class GPT2BPETokenizer:
    """GPT-2 BPE with a stable ``name`` (hash of the vocabulary) used as a cache key."""

    def __init__(self, ranks: dict[bytes, int], eot_id: int) -> None:
        self._ranks = ranks
        digest = hashlib.sha256()
        for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
            digest.update(f"{rank}:{token.hex()}\n".encode())
        digest.update(f"{ENDOFTEXT}:{eot_id}\n".encode())
        self.name = f"gpt2-bpe:{digest.hexdigest()[:16]}"
        self.eot_id = eot_id
        self.pad_id = eot_id  # the reference pads with <|endoftext|>
        self._enc = tiktoken.Encoding(
            self.name,
            pat_str=r50k_pat_str,
            mergeable_ranks=ranks,
            special_tokens={ENDOFTEXT: eot_id},
        )
        self.vocab_size: int = self._enc.n_vocab

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; ``<|endoftext|>`` in the text is treated as plain text."""
        return self._enc.encode_ordinary(text)

    def decode(self, ids: Iterable[int]) -> str:
        return self._enc.decode(list(ids))

    def encode_batch(self, texts: Sequence[str], max_length: int | None = None,
                     truncation: Truncation = HEAD) -> list[list[int]]:
        """Encode many texts on tiktoken's thread pool, keeping ``max_length`` ids chosen by
        ``truncation`` (the first ones by default)."""
        if max_length is not None and max_length < 1:
            raise SentibenchError(f"max_length must be a positive integer, got {max_length}")
        threads = min(8, os.cpu_count() or 1)
        batch = self._enc.encode_ordinary_batch(list(texts), num_threads=threads)
        return batch if max_length is None else [truncation.keep(ids, max_length)
                                                 for ids in batch]

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write HF-style ``vocab.json`` + ``merges.txt`` so the tokenizer reloads offline."""
        ordered = sorted(self._ranks.items(), key=lambda item: item[1])
        vocab = {_to_text(token): rank for token, rank in ordered}
        vocab[ENDOFTEXT] = self.eot_id
        merges = ["#version: 0.2"]
        for token, _ in ordered[256:]:
            left, right = _merge_pair(token, self._ranks)
            merges.append(f"{_to_text(left)} {_to_text(right)}")
        directory = Path(directory)
        atomic_write_text(directory / "vocab.json", json.dumps(vocab, ensure_ascii=False))
        atomic_write_text(directory / "merges.txt", "\n".join(merges) + "\n")

    def __repr__(self) -> str:
        return f"GPT2BPETokenizer(name={self.name!r}, vocab_size={self.vocab_size})"


def tokenizer_from_dir(directory: str | os.PathLike[str], what: str = "") -> GPT2BPETokenizer:
    """The tokenizer in ``directory`` (``what`` says where the directory came from)."""
    found = find_bpe_files(directory)
    if found is None:
        pairs = " or ".join("+".join(pair) for pair in BPE_FILE_PAIRS)
        raise SentibenchError(f"{what}{directory}: no GPT-2 tokenizer files ({pairs})")
    return GPT2BPETokenizer(*_read_bpe_files(*found))


def _tokenizer_from_hub(name: str) -> GPT2BPETokenizer | None:
    """The tokenizer files of a Hub repo, from the HF cache or a download; None if unavailable."""
    try:
        repo = hub_repo_id(name)
        vocab, merges = (download_hub_file(repo, f) for f in BPE_FILE_PAIRS[0])
    except SentibenchError:
        return None
    return GPT2BPETokenizer(*_read_bpe_files(vocab, merges))


def _tiktoken_gpt2() -> GPT2BPETokenizer:
    """tiktoken's ``gpt2`` files (its cache, else a download), hash-checked by tiktoken."""
    from tiktoken_ext.openai_public import gpt2

    try:
        spec = gpt2()
    except Exception as exc:  # network and cache errors come in many types
        raise SentibenchError(
            f"cannot get the GPT-2 BPE files (tiktoken download failed: {type(exc).__name__}); "
            f"set {TOKENIZER_DIR_ENV} to a directory with encoder.json+vocab.bpe "
            "or vocab.json+merges.txt"
        ) from exc
    return GPT2BPETokenizer(spec["mergeable_ranks"], spec["special_tokens"][ENDOFTEXT])


def load_tokenizer(name_or_path: str | os.PathLike[str] | None = None) -> GPT2BPETokenizer:
    """The GPT-2 tokenizer for a model name, Hub repo id or local directory.

    Looked up in order: BPE files in the local directory ``name_or_path`` (a saved classifier
    uses its own copy); the directory in ``$SENTIBENCH_GPT2_TOKENIZER_DIR``; for a model name or
    Hub id, ``vocab.json`` + ``merges.txt`` through the HF cache/Hub; tiktoken's ``gpt2``
    encoding (its cache, else a download).
    """
    local = name_or_path is not None and Path(name_or_path).is_dir()
    if local and find_bpe_files(name_or_path) is not None:
        return tokenizer_from_dir(name_or_path)
    env_dir = os.environ.get(TOKENIZER_DIR_ENV)
    if env_dir:
        return tokenizer_from_dir(env_dir, what=f"{TOKENIZER_DIR_ENV}=")
    if name_or_path is not None and not local:
        tokenizer = _tokenizer_from_hub(str(name_or_path))
        if tokenizer is not None:
            return tokenizer
    return _tiktoken_gpt2()
