"""Cost estimates (pure, table-driven) and the price table they rest on (packaged, dated, sourced,
overridable by a file in the repository or by TUNEKEEPER_PRICES)."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest
from tunekeeper.errors import TunekeeperError
from tunekeeper.reconcile.costs import PriceTable, hosting_cost, money, training_cost
from tunekeeper.reconcile.prices import OVERRIDE_FILE, PRICES_ENV, load_prices

TABLE = PriceTable(
    as_of="2025-11-01", source="https://example.test/prices", currency="USD",
    training={"gpt-4.1-2025-04-14": {"Standard": Decimal("25.00"), "Global": Decimal("22.50")}},
    hosting={"gpt-4.1-2025-04-14": {"Standard": Decimal("3.00"), "DeveloperTier": Decimal(0)}},
)


@pytest.mark.parametrize(
    ("model", "kind", "tokens", "text", "basis"),
    [
        ("gpt-4.1-2025-04-14", None, 2_000_000, "50.00 USD", "2M billed tokens x 25.00 USD / 1M (Standard)"),
        (
            "gpt-4.1-2025-04-14",
            "Global",
            1_234_567,
            "27.78 USD",
            "1.23M billed tokens x 22.50 USD / 1M (Global)",
        ),
        ("gpt-4.1-2025-04-14", "Standard", 100, "<0.01 USD", "100 billed tokens x 25.00 USD / 1M (Standard)"),
        (
            "gpt-4.1-2025-04-14",
            "Developer",
            1_000,
            "price unknown",
            "no Developer training price for gpt-4.1-2025-04-14",
        ),
        ("o4-mini-2025-04-16", None, 1_000, "price unknown", "no training price for o4-mini-2025-04-16"),
        (None, None, 1_000, "price unknown", "no training price for an unknown base model"),
    ],
)
def test_training_cost(model: str | None, kind: str | None, tokens: int, text: str, basis: str) -> None:
    estimate = training_cost(TABLE, model, kind, tokens)
    assert (estimate.text(), estimate.basis) == (text, basis)


@pytest.mark.parametrize(("sku", "fine_tuned", "text"), [
    ("Standard", True, "3.00 USD"),
    ("DeveloperTier", True, "0.00 USD"),
    ("GlobalStandard", True, "price unknown"),
    ("Standard", False, "0.00 USD"),
])
def test_hosting_cost_per_hour(sku: str, fine_tuned: bool, text: str) -> None:
    assert hosting_cost(TABLE, "gpt-4.1-2025-04-14", sku, fine_tuned=fine_tuned).text() == text


def test_money_rounds_half_up_to_cents_and_groups_thousands() -> None:
    assert money(Decimal("1234.565"), "EUR") == "1,234.57 EUR"


def test_the_packaged_table_is_dated_sourced_and_prices_every_fine_tunable_chat_model() -> None:
    table = load_prices(None, {})
    assert table.as_of == "2025-11-01" and table.source.startswith("https://azure.microsoft.com/pricing/")
    assert table.origin == "built-in"
    for model in ("gpt-4.1-2025-04-14", "gpt-4.1-mini-2025-04-14", "gpt-4o-mini-2024-07-18"):
        assert table.training[model]["Standard"] > 0 and table.hosting[model]["Standard"] > 0


def test_a_repository_override_replaces_only_what_it_lists(tmp_path: Path) -> None:
    (tmp_path / OVERRIDE_FILE).write_text(
        "as_of: 2026-01-15\nsource: contract 42\ntraining:\n  gpt-4.1-2025-04-14: {Standard: 20}\n")
    table = load_prices(tmp_path, {})
    assert (table.as_of, table.source, table.origin) == ("2026-01-15", "contract 42", OVERRIDE_FILE)
    assert table.training["gpt-4.1-2025-04-14"] == {"Standard": Decimal(20), "Global": Decimal("22.50"),
                                                    "Developer": Decimal("11.25")}
    assert table.hosting == load_prices(None, {}).hosting
    assert "overridden by tunekeeper.prices.yaml" in table.citation


def test_the_environment_variable_names_the_override_and_wins(tmp_path: Path) -> None:
    (tmp_path / OVERRIDE_FILE).write_text("as_of: 2026-01-15\nsource: repo\n")
    named = tmp_path / "eur.yaml"
    named.write_text(
        "as_of: 2026-02-01\nsource: finance\ncurrency: EUR\nhosting:\n  gpt-4.1-2025-04-14: {Standard: 2.5}\n"
    )
    table = load_prices(tmp_path, {PRICES_ENV: str(named)})
    assert (table.source, table.currency) == ("finance", "EUR")
    assert table.training == {}  # prices in another currency are not mixed with the packaged USD ones
    assert hosting_cost(table, "gpt-4.1-2025-04-14", "Standard").text() == "2.50 EUR"


@pytest.mark.parametrize(("text", "message"), [
    ("source: x\n", "(top level): 'as_of' is a required property"),
    ("as_of: 2026-01-01\nsource: x\ntraining:\n  gpt-4.1-2025-04-14: {Standard: -1}\n",
     "training.gpt-4.1-2025-04-14.Standard: -1 is less than the minimum of 0"),
    ("as_of: [\n", "tunekeeper.prices.yaml:2: not valid YAML"),
])
def test_a_bad_override_names_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / OVERRIDE_FILE).write_text(text)
    with pytest.raises(TunekeeperError) as bad:
        load_prices(tmp_path, {})
    assert message in bad.value.message and bad.value.message.startswith("tunekeeper.prices.yaml")


def test_a_missing_named_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TunekeeperError, match=PRICES_ENV):
        load_prices(tmp_path, {PRICES_ENV: str(tmp_path / "nope.yaml")})


@pytest.mark.timeout(20)
def test_an_override_that_is_no_regular_file_inside_the_repository_is_refused_by_name(tmp_path: Path) -> None:
    """A FIFO never hangs the run, a link out of the repository is not followed, a huge file is not read."""
    override = tmp_path / "repo" / OVERRIDE_FILE
    override.parent.mkdir()
    os.mkfifo(override)
    with pytest.raises(TunekeeperError, match="not a regular file"):
        load_prices(override.parent, {})
    override.unlink()
    outside = tmp_path / "prices.yaml"
    outside.write_text("as_of: 2026-01-01\n")
    override.symlink_to(outside)
    with pytest.raises(TunekeeperError, match="outside the repository"):
        load_prices(override.parent, {})
    override.unlink()
    with override.open("wb") as big:
        big.truncate(64 * 1024 * 1024)  # sparse
    with pytest.raises(TunekeeperError, match="bytes"):
        load_prices(override.parent, {})
