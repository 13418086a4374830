"""The price table behind cost estimates: the packaged one, with a repository's override over it.

``load_prices(root, environ)`` reads ``data/prices.yaml`` (shipped with tunekeeper: list prices
with their ``as_of`` date and ``source`` URL), then an override when there is one:

1. the file named by ``TUNEKEEPER_PRICES`` (an error when it does not exist), else
2. ``tunekeeper.prices.yaml`` at the repository root, when present (committed with the manifests,
   so a price change is reviewed like any other).

An override has the same shape; each (model, training type) and (model, sku) price it gives
replaces the packaged one, and it must say its own ``as_of`` and ``source`` (and may change the
currency, then for every price it lists). A malformed file is a ``TunekeeperError`` naming the
file and field. The estimates themselves are costs.py (pure). Called by the CLI; reads files only.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tunekeeper.errors import TunekeeperError
from tunekeeper.reconcile.costs import PriceTable

PRICES_ENV = "TUNEKEEPER_PRICES"
OVERRIDE_FILE = "tunekeeper.prices.yaml"

_PRICES = {"type": "object", "additionalProperties": {
    "type": "object", "additionalProperties": {"type": "number", "minimum": 0}}}
SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "required": ["as_of", "source"],
    "additionalProperties": False,
    "properties": {
        "as_of": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
        "source": {"type": "string", "minLength": 1},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "training": _PRICES,
        "hosting": _PRICES,
    },
}


def load_prices(root: Path | None = None, environ: Mapping[str, str] | None = None) -> PriceTable:
    """The packaged price table, with the override of ``root`` (or of ``TUNEKEEPER_PRICES``) over it."""
    environ = os.environ if environ is None else environ
    packaged = (
        resources.files("tunekeeper.reconcile").joinpath("data/prices.yaml").read_text(encoding="utf-8")
    )
    table = _table(_parse(packaged, "tunekeeper/reconcile/data/prices.yaml"), "built-in")
    named = environ.get(PRICES_ENV, "").strip()
    override: Path | None = None
    if named:
        override = Path(named)
        if not override.is_file():
            raise TunekeeperError(f"{PRICES_ENV} names {named!r}, which is not a file",
                                  hint=f"point it at a price file shaped like {OVERRIDE_FILE}, or unset it")
    elif root is not None and os.path.lexists(root / OVERRIDE_FILE):  # a FIFO or a link too: judged below
        override = root / OVERRIDE_FILE
    if override is None:
        return table
    shown = str(override if override.is_absolute() and root is None else _relative(override, root))
    # the repository's file may not lead out of it; a file named by the variable may be anywhere
    inside = root if not named and root is not None else override.resolve().parent
    return merge(table, _table(_parse(_read(override, inside, shown), shown), shown))


def _read(path: Path, inside: Path, shown: str) -> str:
    """A price file, under the manifests' rules: a regular file, size checked before a bounded read."""
    from tunekeeper.resources.loader import Refused, read_manifest

    try:
        return read_manifest(path, inside).decode("utf-8")
    except Refused as refused:
        raise TunekeeperError(f"{shown}: {refused.reason}", hint=refused.hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TunekeeperError(f"{shown}: not a readable price file ({type(exc).__name__})",
                              hint="a price file is UTF-8 YAML shaped like the packaged prices.yaml",
                              ) from None


def merge(base: PriceTable, override: PriceTable) -> PriceTable:
    """``override``'s prices over ``base``'s; its date, source and currency win."""
    def combined(a: Mapping[str, Mapping[str, Decimal]],
                 b: Mapping[str, Mapping[str, Decimal]]) -> dict[str, dict[str, Decimal]]:
        out = {model: dict(prices) for model, prices in a.items()}
        for model, prices in b.items():
            out.setdefault(model, {}).update(prices)
        return out

    # prices in two currencies cannot be mixed: keep only the override's
    if override.currency != base.currency:
        return override
    return PriceTable(
        override.as_of,
        override.source,
        override.currency,
        combined(base.training, override.training),
        combined(base.hosting, override.hosting),
        override.origin,
    )


def _relative(path: Path, root: Path | None) -> Path:
    try:
        return path.resolve().relative_to(root.resolve()) if root is not None else path
    except ValueError:
        return path


def _parse(text: str, shown: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{shown}:{mark.line + 1}" if mark is not None else shown
        raise TunekeeperError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}",
                              hint="fix the syntax; see the packaged prices.yaml for the shape") from None
    if isinstance(data, dict) and isinstance(data.get("as_of"), dt.date):
        data["as_of"] = data["as_of"].isoformat()  # an unquoted date is a date in YAML; the text is meant
    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        field = ".".join(str(p) for p in first.absolute_path) or "(top level)"
        raise TunekeeperError(f"{shown}: {field}: {first.message}",
                              hint="a price file has as_of (YYYY-MM-DD), source (URL), currency, and "
                                   "training / hosting maps of model -> name -> price")
    return dict(data)


def _table(data: Mapping[str, Any], origin: str) -> PriceTable:
    def prices(section: str) -> dict[str, dict[str, Decimal]]:
        return {str(model): {str(k): Decimal(str(v)) for k, v in entries.items()}
                for model, entries in (data.get(section) or {}).items()}

    return PriceTable(
        as_of=str(data["as_of"]),
        source=str(data["source"]),
        currency=str(data.get("currency", "USD")),
        training=prices("training"),
        hosting=prices("hosting"),
        origin=origin,
    )
