"""results.csv parsing and rendering: the series the charts draw, the terminal view, the PNG."""

from __future__ import annotations

from pathlib import Path

import pytest
from tunekeeper.reconcile.results import (
    FULL_VALID_LOSS,
    TRAIN_ACCURACY,
    TRAIN_LOSS,
    VALID_ACCURACY,
    VALID_LOSS,
    Point,
    ResultsError,
    build_figure,
    parse_results,
    render_png,
    render_text,
    sparkline,
)

RESULTS_CSV = """\
step,train_loss,train_mean_token_accuracy,valid_loss,valid_mean_token_accuracy,full_valid_loss,full_valid_mean_token_accuracy
1,2.5,0.40,,,,
2,2.1,0.45,2.3,0.42,,
3,1.7,0.52,,,,
4,1.2,0.61,1.5,0.55,1.45,0.57
5,0.9,0.70,,,,
6,0.8,0.74,1.1,0.66,1.2,0.65
"""


def test_series_skip_empty_cells_and_keep_step_order() -> None:
    results = parse_results(RESULTS_CSV.encode())
    assert results.steps == (1, 2, 3, 4, 5, 6)
    assert results.series(TRAIN_LOSS) == tuple(
        Point(s, v) for s, v in [(1, 2.5), (2, 2.1), (3, 1.7), (4, 1.2), (5, 0.9), (6, 0.8)]
    )
    assert results.series(VALID_LOSS) == (Point(2, 2.3), Point(4, 1.5), Point(6, 1.1))
    assert results.series(FULL_VALID_LOSS) == (Point(4, 1.45), Point(6, 1.2))


def test_best_is_lowest_loss_and_highest_accuracy() -> None:
    results = parse_results(RESULTS_CSV)
    assert results.best(FULL_VALID_LOSS) == Point(6, 1.2)
    assert results.best(TRAIN_ACCURACY) == Point(6, 0.74)
    summary = results.summary()
    assert summary["steps"] == 6
    assert summary[VALID_LOSS] == {"final": 1.1, "final_step": 6, "best": 1.1, "best_step": 6}


def test_documented_alias_and_bom_are_accepted() -> None:
    text = "\ufeffstep,train_loss,validation_mean_token_accuracy\n1,1.0,0.5\n2,0.5,\n"
    results = parse_results(text.encode())
    assert results.series(VALID_ACCURACY) == (Point(1, 0.5),)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "is empty"),
        ("loss,acc\n1,2\n", "no 'step' column"),
        ("step,train_loss\n1,abc\n", "results.csv:2: 'train_loss' is 'abc'"),
        ("step,train_loss\n1\n", "results.csv:2: 1 cells"),
        ("step,train_loss\n1.5,0.1\n", "not a whole number"),
    ],
)
def test_bad_files_name_line_and_column(text: str, fragment: str) -> None:
    with pytest.raises(ResultsError) as caught:
        parse_results(text)
    assert fragment in caught.value.message


def test_terminal_view_lists_each_metric_with_first_final_and_best() -> None:
    view = render_text(parse_results(RESULTS_CSV), title="clippy", width=12)
    lines = view.splitlines()
    assert lines[0] == "clippy"
    assert lines[1] == "6 steps (1..6)"
    loss_line = next(line for line in lines if line.startswith("train_loss "))
    assert "2.5000 -> 0.8000" in loss_line and "(best 0.8000 @ step 6)" in loss_line
    assert loss_line.split()[1] == "█▇▅▂▁▁"
    assert any(line.startswith("full_valid_mean_token_accuracy") for line in lines)


def test_sparkline_resamples_to_width() -> None:
    assert len(sparkline([float(i) for i in range(1000)], width=20)) == 20
    assert sparkline([1.0, 1.0, 1.0]) == "▅▅▅"
    assert sparkline([]) == ""


def test_png_is_written_with_both_charts(tmp_path: Path) -> None:
    target = render_png(parse_results(RESULTS_CSV), tmp_path / "out" / "clippy.png", title="clippy")
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000


def test_figure_draws_exactly_the_parsed_series() -> None:
    fig = build_figure(parse_results(RESULTS_CSV), title="clippy")
    loss_ax, acc_ax = fig.axes
    lines = {
        line.get_label(): (tuple(line.get_xdata()), tuple(line.get_ydata())) for line in loss_ax.get_lines()
    }
    assert lines["train"] == ((1, 2, 3, 4, 5, 6), (2.5, 2.1, 1.7, 1.2, 0.9, 0.8))
    assert lines["validation"] == ((2, 4, 6), (2.3, 1.5, 1.1))
    assert lines["full validation"] == ((4, 6), (1.45, 1.2))
    assert loss_ax.get_title() == "Loss" and acc_ax.get_title() == "Token accuracy"
    acc_lines = {line.get_label(): tuple(line.get_ydata()) for line in acc_ax.get_lines()}
    assert acc_lines["train"] == (0.40, 0.45, 0.52, 0.61, 0.70, 0.74)
    assert acc_lines["validation"] == (0.42, 0.55, 0.66)


def test_figure_without_validation_has_only_train_lines() -> None:
    fig = build_figure(parse_results("step,train_loss,train_mean_token_accuracy\n1,2.0,0.3\n2,1.0,0.6\n"))
    assert [line.get_label() for ax in fig.axes for line in ax.get_lines()] == ["train", "train"]
