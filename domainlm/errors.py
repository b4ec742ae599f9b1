"""Errors meant for the user: one line that names the file, row or flag and says what to do."""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Callable
from typing import Any, NoReturn


class UserError(Exception):
    """Bad input or a bad flag. The message is printed alone, without a traceback."""


def one_line_errors(parser: Any) -> Any:
    """The ``argparse`` parser, changed so that a flag it does not know or a value of the wrong type ends
    with one line, ``error: ...; see python SCRIPT --help``, and status 2, instead of its usage block
    (143 lines for run_clm.py, whose parser holds every Trainer flag). ``--help`` is unchanged.

    A flag it does not know is said first, with the closest known one: argparse would rather say that a
    required flag is missing (``--validation_fle`` for ``--validation_file``), and never which was meant."""
    given: list[str] = []

    def error(message: str) -> NoReturn:
        unknown = unknown_flags(parser, given)
        if unknown:
            message = f"unknown flag{'s' if len(unknown) > 1 else ''} " + ", ".join(
                _with_guess(flag, parser) for flag in unknown
            )
        sys.stderr.write(f"error: {message}; see python {parser.prog} --help\n")
        sys.exit(2)

    parse_known_args = parser.parse_known_args

    def remembering(args: Any = None, namespace: Any = None) -> Any:
        given[:] = list(sys.argv[1:] if args is None else args)
        return parse_known_args(args, namespace)

    parser.error = error
    parser.parse_known_args = remembering  # what parse_args calls: the arguments, for error
    return parser


def unknown_flags(parser: Any, args: list[str]) -> list[str]:
    """The ``--flags`` of ``args`` that ``parser`` knows neither whole nor, where it allows, by a prefix."""
    known = list(parser._option_string_actions)
    unknown = []
    for arg in args:
        if arg == "--":
            break
        if not arg.startswith("--"):
            continue
        flag = arg.split("=", 1)[0]
        if flag in known or (parser.allow_abbrev and any(k.startswith(flag) for k in known)):
            continue
        unknown.append(flag)
    return unknown


def _with_guess(flag: str, parser: Any) -> str:
    import difflib

    options = [k for k in parser._option_string_actions if k.startswith("--")]
    guess = difflib.get_close_matches(flag, options, n=1, cutoff=0.75)
    return f"{flag} (did you mean {guess[0]}?)" if guess else flag


def first_line(err: BaseException, limit: int | None = 200) -> str:
    """The first line of an exception's message (at most ``limit`` characters), else its type's name: for a
    one-line error that quotes what a library said."""
    text = str(err).strip()
    return (text.splitlines()[0][:limit] if text else "") or type(err).__name__


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with the line that says how to go on (printed alone by ``run_cli``)."""


def run_cli(main: Callable[[list[str] | None], object], argv: list[str] | None = None) -> int:
    """Run a script's ``main`` and turn a ``UserError`` into ``error: ...`` and exit status 2.

    Ctrl-C prints one line (an ``Interrupted`` says how to go on) and gives status 130, as a shell does.
    When the reader of standard output has gone (``... | head``), the rest of what would be printed is
    dropped without a traceback and the status is 141, as for a command that a shell's SIGPIPE ends.
    Any other exception is a bug and keeps its traceback. On every way out, this rank's DeepSpeed
    shared-memory buffer is removed (``domainlm.distributed.remove_shm_buffer``); after a successful
    ``main``, the process group of a multi-process run is taken down
    (``domainlm.distributed.release_process_group``), so that the process exits with status 0; where
    Gloo's threads outlive it, the process ends there, with status 0.
    """
    from domainlm.distributed import release_process_group, remove_shm_buffer

    try:
        main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        remove_shm_buffer()  # the launcher stops the other ranks, so the buffer is not needed any more
        return 2
    except BrokenPipeError:
        if not _stdout_reader_gone():
            remove_shm_buffer()
            raise
        remove_shm_buffer()
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's final flush must not fail too
        return 141
    except KeyboardInterrupt as err:
        remove_shm_buffer()
        print(str(err) if isinstance(err, Interrupted) and str(err) else "interrupted", file=sys.stderr, flush=True)
        return 130
    except BaseException:
        remove_shm_buffer()  # a bug: its traceback follows, but the 70 MB buffer does not outlive it
        raise
    release_process_group()
    return 0


def _stdout_reader_gone() -> bool:
    """Whether standard output is a pipe whose reading end is closed (poll reports an error on it)."""
    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no fileno (captured), or a platform without poll
        return False
