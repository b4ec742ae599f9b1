"""Benchmark output: a Markdown table for the terminal and docs, and a JSON file for the record."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# How the benchmarks end the loader's message about rows over the block (they have no --overlong).
DROP_HINT = "the benchmark leaves them out, as training does by default; raise --block_size to keep them"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table; numbers are shown as given (format them before)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: str | Path, obj: Any) -> None:
    """Written atomically (the project's writer), parent folders created."""
    from domainlm.tables import write_json as atomic_write_json

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, obj)


def fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def load_line(out: dict[str, Any]) -> str:
    """The machine's load averages around a run, as every benchmark records them."""
    return f"load average before {out['load_average_before']}, after {out['load_average_after']}"


def fmt_ratio(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}x"


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """No progress bars or info chatter from datasets and transformers; restored afterwards."""
    import datasets
    import transformers

    bars = datasets.is_progress_bar_enabled()
    verbosity = transformers.logging.get_verbosity()
    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    try:
        yield
    finally:
        if bars:
            datasets.enable_progress_bars()
        transformers.logging.set_verbosity(verbosity)


def run_benchmark(
    arguments: type,
    run: Callable[[Any], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
    argv: list[str] | None,
    description: str | None,
) -> int:
    """The ``main`` of every benchmark script: its dataclass arguments from the command line (checked
    before any work, ``--json_out`` included), the run with library chatter off, the table printed, and
    the figures written to ``--json_out`` if given."""
    from transformers import HfArgumentParser

    from domainlm.tables import check_output_file

    (args,) = HfArgumentParser(arguments, description=description).parse_args_into_dataclasses(args=argv)
    if args.json_out:
        check_output_file(args.json_out, "--json_out", (".json",))  # now, not after the whole run
    with quiet_libraries():
        out = run(args)
    print(render(out), flush=True)
    if args.json_out:
        write_json(args.json_out, out)
        print(f"wrote {args.json_out}")
    return 0
