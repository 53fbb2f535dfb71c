"""The ``wirecap`` command. Each part adds its own subcommands through ``add_commands``."""
import argparse
import sys
import warnings

from .errors import WirecapError


def _parts():
    # Imported lazily so that `wirecap --help` stays fast and a broken optional part
    # (e.g. a missing libpcap) does not take the whole command down.
    from . import capture, demo, livestats
    from .bench import cli as bench_cli
    parts = [capture, livestats, demo, bench_cli]
    try:
        from vfio_setup import cli as host_cli
    except ImportError:
        pass
    else:
        parts.append(host_cli)
    return parts


def build_parser():
    parser = argparse.ArgumentParser(
        prog="wirecap",
        description="Lossless packet capture for 10 GbE NICs (Intel 82599, its model, AF_PACKET).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for part in _parts():
        part.add_commands(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, line=None):
    return f"wirecap: warning: {message}\n"


def main(argv=None):
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:                         # the command's own usage, as tcpdump shows its own
        getattr(args, "parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    warnings.formatwarning = _one_line_warning
    try:
        return args.func(args) or 0
    except WirecapError as exc:
        print(f"wirecap {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:             # `wirecap ... | head`: the reader left, not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
