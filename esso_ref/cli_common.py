"""Shared pieces of the ``esso-ref`` command line: parser, argument types, tables, exit codes.

Exit status: 0 success, 1 internal failure, 2 usage or input error (including a refused
allocation or a busy output), 3 training diverged. Errors print one line on stderr; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import re
import sys
import traceback
import warnings

from ._table import format_table

__all__ = ["EXIT_DIVERGED", "EXIT_INTERNAL", "EXIT_USAGE", "Parser", "add_parser", "count",
           "format_table", "positive_float", "run_command", "sizes", "sizes_list"]

EXIT_INTERNAL, EXIT_USAGE, EXIT_DIVERGED = 1, 2, 3

_NEGATIVE_NUMBER = re.compile(r"^-((\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|inf|infinity|nan)$",
                              re.IGNORECASE)
"""-3, -0.5, -.5, -1e-3, -2.5E+4, -inf, -nan: what argparse reads as a value, not as an option."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit status 2).

    A value such as ``-1e-3`` after an option is read as that option's (negative) number, as
    ``-0.001`` is, so that its type check can say what was expected (argparse otherwise takes
    a number with an exponent for an option and reports a missing argument).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE_NUMBER

    def error(self, message: str):
        """Print ``<prog>: error: <message>`` and exit with status 2."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows every option's default (unless the help text already states it)."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        if "default" in text or action.default is argparse.SUPPRESS:
            return text
        return super()._get_help_string(action)


def add_parser(sub, name: str, **kw) -> Parser:
    """A sub-command parser with defaults in its help and a ``--debug`` flag."""
    p = sub.add_parser(name, formatter_class=_Formatter, **kw)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the traceback of an error (default: off)")
    return p


def sizes(text: str) -> list[int]:
    """``8,6,4`` -> [8, 6, 4]; positive integer widths, at least two."""
    try:
        out = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integer widths such as 8,6,4, got {text!r}") from None
    if len(out) < 2 or min(out) < 1:
        raise argparse.ArgumentTypeError(
            f"expected at least two positive widths such as 8,6,4, got {text!r}")
    return out


def sizes_list(text: str) -> list[list[int]]:
    """``64,32,10;784,256,10`` -> [[64, 32, 10], [784, 256, 10]]."""
    parts = text.split(";")
    if not text.strip() or any(not p.strip() for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected networks separated by ';' such as '64,32,10;784,256,10', got {text!r}")
    return [sizes(p) for p in parts]


def count(low: int):
    """An argparse type: an integer >= ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def accuracy(text: str) -> float:
    """An argparse type: an accuracy in (0, 1]."""
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected an accuracy in (0, 1], got {text!r}")
    return value


def _one_line_warnings(message, category, filename, lineno, file=None, line=None):
    print(f"esso-ref: warning: {message}", file=sys.stderr if file is None else file)


def run_command(args) -> int:
    """Run ``args.run(args)`` and map exceptions to exit codes and one-line messages."""
    from .train import Diverged

    name = f"esso-ref {args.command}"
    debug = getattr(args, "debug", False)
    if not debug:
        warnings.showwarning = _one_line_warnings

    def fail(line: str, code: int) -> int:
        if debug:  # the traceback first; the exit status is the same as without --debug
            traceback.print_exc()
        print(line, file=sys.stderr)
        return code

    try:
        return args.run(args)
    except Diverged as err:
        return fail(f"{name}: {err}", EXIT_DIVERGED)
    except (ValueError, TypeError, ImportError, OSError) as err:
        return fail(f"{name}: error: {_message(err)}", EXIT_USAGE)
    except MemoryError as err:  # an allocation NumPy refused: the request is too large
        return fail(f"{name}: error: not enough memory: {_message(err)}; use smaller sizes "
                    "or fewer samples", EXIT_USAGE)
    except KeyboardInterrupt:
        return fail(f"{name}: interrupted", 130)
    except Exception as err:  # an internal failure: one line, traceback with --debug
        return fail(f"{name}: internal error: {type(err).__name__}: {_message(err)}"
                    + ("" if debug else " (rerun with --debug for the traceback)"),
                    EXIT_INTERNAL)


def _message(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    if isinstance(err, OSError) and err.filename and str(err.filename) not in text:
        text = f"{text}: {err.filename}"
    return " ".join(text.split())
