"""Options are declared once, as dataclass fields; everything else is derived from them.

A field made with :func:`option` carries its help, choices and lower bound in its metadata
(the way Hugging Face's ``HfArgumentParser`` reads field metadata). From the dataclass
alone this module builds the command-line flags (``--snake_case`` and ``--kebab-case``
spellings), checks a value of any origin (command line, ``bench --set``, a TOML file, a
checkpoint's saved settings) with one wording, and converts text to the field's real type.
Adding an option is adding a field. Light on purpose: no torch, no pandas.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sentibench.core.errors import SentibenchError

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def option(default: Any, help: str, *, choices: Iterable[str] | None = None,
           minimum: float | None = None, above: float | None = None,
           snake: bool = False, metavar: str | None = None, cli: bool = True,
           nonfinite: bool = False) -> Any:
    """A dataclass field that is also a documented, checked option.

    ``minimum``: smallest allowed value; ``above``: values must be strictly greater.
    ``nonfinite``: a float option that accepts nan and ±inf (none does yet: a NaN learning
    rate trains nothing and reports a chance-level run as if it were a result).
    ``snake``: the reference's own flag is snake_case (``--num_epochs``); both spellings
    are always accepted. ``cli=False``: settable in bench overrides, not as a flag.
    """
    meta = {"help": help, "choices": tuple(choices) if choices is not None else None,
            "minimum": minimum, "above": above, "snake": snake, "metavar": metavar,
            "cli": cli, "nonfinite": nonfinite}
    return dataclasses.field(default=default, metadata={"option": meta})


@dataclasses.dataclass(frozen=True)
class Opt:
    """One option of a dataclass, with its type resolved (``int | None`` -> int, nullable)."""

    name: str
    kind: type
    nullable: bool
    default: Any
    help: str
    choices: tuple[str, ...] | None
    minimum: float | None
    above: float | None
    snake: bool
    metavar: str | None
    cli: bool
    nonfinite: bool

    @property
    def flag(self) -> str:
        return "--" + (self.name if self.snake else self.name.replace("_", "-"))


def _base_type(hint: Any) -> tuple[type, bool]:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return hint, False


@functools.cache
def options_of(cls: type) -> tuple[Opt, ...]:
    """The :func:`option` fields of a dataclass, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("option")
        if meta is None:
            continue
        kind, nullable = _base_type(hints[f.name])
        out.append(Opt(f.name, kind, nullable, f.default, **meta))
    return tuple(out)


def option_map(*classes: type) -> dict[str, Opt]:
    return {o.name: o for cls in classes for o in options_of(cls)}


# --- checking ------------------------------------------------------------------------

def check(opt: Opt, value: Any) -> None:
    """Raise the one-line error for a value outside the option's choices or bounds."""
    if value is None:
        if not opt.nullable:
            raise SentibenchError(f"{opt.flag} needs a value")
        return
    if isinstance(value, float) and not opt.nonfinite and not math.isfinite(value):
        raise SentibenchError(f"{opt.flag} must be a finite number, got {value}")
    if opt.choices is not None and value not in opt.choices:
        raise SentibenchError(f"{opt.flag} must be one of {', '.join(opt.choices)}, "
                              f"got {value!r}")
    if opt.above is not None and not value > opt.above:
        word = "positive" if opt.above == 0 else f"greater than {opt.above}"
        raise SentibenchError(f"{opt.flag} must be {word}, got {value}")
    if opt.minimum is not None and not value >= opt.minimum:
        word = "zero or more" if opt.minimum == 0 else f"at least {opt.minimum}"
        raise SentibenchError(f"{opt.flag} must be {word}, got {value}")


def validate(obj: Any) -> None:
    """Check every option field of a dataclass instance (call from ``__post_init__``)."""
    for opt in options_of(type(obj)):
        value = getattr(obj, opt.name)
        if opt.kind is Path and value is not None and not isinstance(value, Path):
            value = Path(value)
            setattr(obj, opt.name, value)
        check(opt, value)


# --- converting text (command line, --set, TOML) ---------------------------------------

def convert(opt: Opt, value: Any) -> Any:
    """``value`` as the option's type: '2' -> 2 for an int, 'true' -> True for a bool.

    Values of the right type pass through (TOML gives typed values); a float with no
    fraction is accepted for an int (``1e3``); ``none`` gives None where None is allowed.
    """
    kind = opt.kind
    if value is None or (isinstance(value, kind) and not (kind is int and
                                                          isinstance(value, bool))):
        return value
    text = str(value).strip()
    if opt.nullable and text.lower() in ("none", "null", ""):
        return None
    try:
        if kind is bool:
            if text.lower() not in _TRUE | _FALSE:
                raise ValueError
            return text.lower() in _TRUE
        if kind is int:
            number = float(text) if isinstance(value, float) or "e" in text.lower() else None
            if number is not None:
                if not number.is_integer():
                    raise ValueError
                return int(number)
            return int(text)
        return kind(text)
    except ValueError:
        raise SentibenchError(f"{opt.flag}: expected {_type_word(opt)}, got {value!r}"
                              ) from None


def _type_word(opt: Opt) -> str:
    words = {bool: "bool (true or false)", Path: "path"}
    return words.get(opt.kind, opt.kind.__name__)


def build(cls: type, values: Mapping[str, Any], **fixed: Any) -> Any:
    """An instance of ``cls`` from converted ``values`` (unknown keys are ignored)."""
    known = {o.name: o for o in options_of(cls)}
    kwargs = {k: convert(known[k], v) for k, v in values.items() if k in known}
    return cls(**{**kwargs, **fixed})


# --- the command line ------------------------------------------------------------------

def _argparse_type(opt: Opt):
    def parse(text: str) -> Any:
        try:
            value = convert(opt, text)
            check(opt, value)
        except SentibenchError as exc:  # argparse names the flag itself
            message = str(exc).removeprefix(opt.flag + ": ").removeprefix(opt.flag + " ")
            raise argparse.ArgumentTypeError(message) from None
        return value

    parse.__name__ = _type_word(opt)  # argparse names the type in its error message
    return parse


def add_flag(container: argparse._ActionsContainer, *names: str, **kwargs: Any) -> None:
    """Add a flag under every spelling: as given, kebab-case and snake_case."""
    spellings: list[str] = []
    for name in names:
        for variant in (name, name.replace("_", "-"), "--" + name[2:].replace("-", "_")):
            if variant not in spellings:
                spellings.append(variant)
    container.add_argument(*spellings, **kwargs)


def add_options(container: argparse._ActionsContainer, cls: type,
                defaults: Mapping[str, Any] | None = None,
                skip: Iterable[str] = ()) -> None:
    """One flag per option field of ``cls``; ``defaults`` replaces some field defaults."""
    defaults = dict(defaults or {})
    for opt in options_of(cls):
        if not opt.cli or opt.name in skip:
            continue
        default = defaults.get(opt.name, opt.default)
        help_text = opt.help
        if default not in (None, False) and "default" not in help_text:
            help_text += " (default: %(default)s)"
        kwargs: dict[str, Any] = {"dest": opt.name, "default": default, "help": help_text}
        if opt.kind is bool and default is False:
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = _argparse_type(opt)
            kwargs["metavar"] = opt.metavar or ("{true,false}" if opt.kind is bool else None)
            if opt.choices is not None:
                kwargs["choices"] = opt.choices
                kwargs.pop("metavar")
        add_flag(container, opt.flag, **{k: v for k, v in kwargs.items() if v is not None
                                         or k == "default"})


def from_namespace(cls: type, args: argparse.Namespace, **fixed: Any) -> Any:
    """The dataclass of ``cls`` from parsed arguments (fields without a flag keep defaults)."""
    values = {o.name: getattr(args, o.name) for o in options_of(cls) if hasattr(args, o.name)}
    return cls(**{**values, **fixed})


def to_dict(obj: Any) -> dict[str, Any]:
    """A JSON-ready dict of a dataclass (paths as strings)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(obj).items()}
