"""What a tuner may change about a row, and in which range: ``--space`` and the defaults.

One readable syntax, parameters separated by commas::

    learning_rate=log:1e-6:1e-4,num_epochs=int:1:4,warmup_ratio=float:0:0.2,
    batch_size=choice:8|16|32

``log`` draws a float log-uniformly, ``float`` uniformly, ``int`` an integer (both bounds
included), ``choice`` one of the listed values. Every name must be a setting of the row
(the keys ``bench --set`` accepts, from the option dataclasses) and every bound or choice
a value that option accepts: checked before any trial runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sentibench.core.errors import SentibenchError
from sentibench.core.options import Opt, check, convert

KINDS = ("log", "float", "int", "choice")


@dataclass(frozen=True)
class Param:
    """One dimension of the search: a setting, how it is drawn, and its range."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    def spec(self) -> str:
        """The parameter as ``--space`` writes it (recorded with the study)."""
        if self.kind == "choice":
            return f"{self.name}=choice:{'|'.join(map(str, self.choices))}"
        return f"{self.name}={self.kind}:{self.low:g}:{self.high:g}"

    def suggest(self, trial: Any) -> Any:
        """Draw a value from an Optuna trial."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high))
        return trial.suggest_float(self.name, self.low, self.high, log=self.kind == "log")


def parse_space(text: str, allowed: dict[str, Opt]) -> dict[str, Param]:
    """``--space`` as parameters, each checked against the row's options."""
    params: dict[str, Param] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, rule = item.partition("=")
        name = name.strip()
        if not sep or ":" not in rule:
            raise SentibenchError(f"--space {item!r}: write NAME=KIND:..., e.g. "
                                  "learning_rate=log:1e-6:1e-4 or batch_size=choice:8|16")
        if name not in allowed:
            raise SentibenchError(f"--space {item!r}: {name!r} is not a setting of this "
                                  f"row; settings: {', '.join(sorted(allowed))}")
        if name in params:
            raise SentibenchError(f"--space names {name!r} twice")
        params[name] = _param(item, name, rule.strip(), allowed[name])
    if not params:
        raise SentibenchError("--space is empty: name at least one setting to search")
    return params


def _param(item: str, name: str, rule: str, opt: Opt) -> Param:
    kind, _, rest = rule.partition(":")
    if kind not in KINDS:
        raise SentibenchError(f"--space {item!r}: kind {kind!r} is not one of "
                              f"{', '.join(KINDS)}")
    if kind == "choice":
        values = tuple(_value(item, opt, v) for v in rest.split("|") if v.strip())
        if len(values) < 2:
            raise SentibenchError(f"--space {item!r}: a choice needs two or more values")
        return Param(name, kind, choices=values)
    bounds = rest.split(":")
    if len(bounds) != 2:
        raise SentibenchError(f"--space {item!r}: {kind} needs two bounds, LOW:HIGH")
    if kind == "int" and opt.kind is not int or kind != "int" and opt.kind is not float:
        raise SentibenchError(f"--space {item!r}: {name} is "
                              f"{'an integer' if opt.kind is int else opt.kind.__name__}; "
                              f"use {'int' if opt.kind is int else 'choice'}")
    low, high = (_value(item, opt, b) for b in bounds)
    if not low < high or (kind == "log" and low <= 0):
        raise SentibenchError(f"--space {item!r}: need LOW < HIGH"
                              + (" and LOW > 0 for log" if kind == "log" else ""))
    return Param(name, kind, float(low), float(high))


def _value(item: str, opt: Opt, text: str) -> Any:
    try:
        value = convert(opt, text.strip())
        check(opt, value)
    except SentibenchError as exc:
        raise SentibenchError(f"--space {item!r}: {exc}") from None
    return value


def default_space(engine: bool, settings: dict[str, Any], allowed: dict[str, Opt]
                  ) -> dict[str, Param]:
    """A sensible search for a row: neural rows around their own (published) learning
    rate, one to four epochs, warm-up, weight decay, batch size; logistic regression its
    regularisation and n-gram range. A row without such settings (the dummy) has none."""
    if engine:
        rate = float(settings.get("learning_rate", allowed["learning_rate"].default))
        params = [Param("learning_rate", "log", rate / 10, rate * 10),
                  Param("num_epochs", "int", 1, 4),
                  Param("warmup_ratio", "float", 0.0, 0.2),
                  Param("weight_decay", "choice", choices=(0.0, 0.01, 0.1)),
                  Param("batch_size", "choice", choices=(8, 16, 32))]
    else:
        params = [Param("C", "log", 0.01, 100.0), Param("ngram_max", "int", 1, 3)]
    return {p.name: p for p in params if p.name in allowed}
