"""What every command's options share: value types with clear errors, and help that shows defaults."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable

#: ``tcp://HOST:PORT`` (a bracketed IPv6 host too), optionally ``#NAME`` (the peer's expected name)
_ADDRESS = re.compile(r"^tcp://(\[[0-9A-Fa-f:.]+\]|[^\s:/#\[\]]+):(\d{1,5})(#[^\s#]+)?$")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default after its help, unless there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "%(default)" in text or default is None or default is False or default == [] or default == argparse.SUPPRESS:
            return text
        if action.option_strings or action.nargs in ("?", "*"):
            return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"
        return text


def help_of(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """A handler for a command given without its subcommand: print its help, exit 2."""

    def show(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return show


def positive_int(text: str) -> int:
    """An integer >= 1 (argparse prefixes the option's name to the error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A number > 0 (argparse prefixes the option's name to the error)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def address(text: str) -> str:
    """A node address ``tcp://HOST:PORT`` (``#NAME`` allowed where a peer's name is expected)."""
    match = _ADDRESS.match(text)
    if match is None or not 0 <= int(match.group(2)) <= 65535:
        raise argparse.ArgumentTypeError(
            f"addresses look like tcp://HOST:PORT (e.g. tcp://127.0.0.1:7001), got {text!r}"
        )
    return text


def cli_wording(message: str) -> str:
    """An error's text with the Python API's spelling of an option replaced by the CLI's."""
    return (
        message.replace("pass keys=DIR", "pass --keys DIR")
        .replace("Pass keys=DIR", "Pass --keys DIR")
        .replace("pass insecure=True (--insecure)", "pass --insecure")
        .replace("pass name=...", "pass --name NAME")
    )
