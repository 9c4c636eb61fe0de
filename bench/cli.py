"""``python -m bench``: the command line of the benchmark (``make bench`` runs it)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from bench.options import DEFAULT_JSON, SCENARIOS, Options
from bench.runner import run

__all__ = ["main", "parser"]

_DEFAULTS = Options()


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _scenarios(text: str) -> frozenset[str]:
    if text.strip().lower() == "all":
        return frozenset(SCENARIOS)
    by_name = {name.lower(): name for name in SCENARIOS}
    chosen = set()
    for part in text.split(","):
        name = by_name.get(part.strip().lower())
        if name is None:
            raise argparse.ArgumentTypeError(
                f"unknown scenario {part.strip()!r}; choose from {', '.join(SCENARIOS)}"
            )
        chosen.add(name)
    return frozenset(chosen)


def parser() -> argparse.ArgumentParser:
    """The argument parser (``--help`` documents every flag)."""
    result = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Benchmark Watchword as deployed: a real `watchword serve` on a real PostgreSQL "
            "(found or started as the tests do; WATCHWORD_TEST_DATABASE_URL picks one), "
            "seeded, driven by h2load. Prints a table of ratios measured side by side in "
            "this run, each with the target of issue 8, and writes them as JSON. "
            "Scenarios: B1 checks ÷ Health/Check (warm caches and caches off); B1i "
            "the same warm, in instructions (needs --instructions); B2 "
            "Authenticate ÷ the hashing bound; B3 check p99 in a login storm ÷ idle; B4 "
            "check p50 on a large database ÷ small (needs --large); B5 100 checks ÷ one "
            "BatchCheck; B6 cached `requires` overhead (µs); B7 a login ÷ its hash; "
            "workers: `serve --workers N` ÷ `--workers 1`."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    result.add_argument(
        "--duration",
        type=_positive_float,
        default=_DEFAULTS.duration,
        metavar="SECONDS",
        help="length of each measured load run",
    )
    result.add_argument(
        "--warmup",
        type=_non_negative_float,
        default=_DEFAULTS.warmup,
        metavar="SECONDS",
        help="unmeasured load before a call's first run on a server",
    )
    result.add_argument(
        "--rounds",
        type=_positive_int,
        default=_DEFAULTS.rounds,
        metavar="N",
        help="measurements per figure, each between two of its reference; the median counts",
    )
    result.add_argument(
        "--only",
        type=_scenarios,
        default="all",
        metavar="LIST",
        help=f"comma-separated scenarios to run, of {','.join(SCENARIOS)}; B4 also needs --large",
    )
    result.add_argument(
        "--large",
        action="store_true",
        help="run B4: build a database of --large-users users first (a minute or two)",
    )
    result.add_argument(
        "--large-users",
        type=_positive_int,
        default=_DEFAULTS.large_users,
        metavar="N",
        help="users of B4's large database",
    )
    result.add_argument(
        "--instructions",
        action="store_true",
        help="run B1i: B1's warm ratios in instructions per call, the server under "
        "valgrind's callgrind (steal cannot move them; a few minutes)",
    )
    result.add_argument(
        "--instruction-calls",
        type=_positive_int,
        default=_DEFAULTS.instruction_calls,
        metavar="N",
        help="calls per counted run of B1i",
    )
    result.add_argument(
        "--users",
        type=_positive_int,
        default=_DEFAULTS.users,
        metavar="N",
        help="users of the everyday database (and B4's small side)",
    )
    result.add_argument(
        "--memberships-per-user",
        type=_positive_int,
        default=_DEFAULTS.memberships_per_user,
        metavar="N",
        help="groups each seeded user is in",
    )
    result.add_argument(
        "--bcrypt-cost",
        type=_positive_int,
        default=_DEFAULTS.bcrypt_cost,
        metavar="COST",
        help="bcrypt cost of the servers' hmac_alg and of the seeded hashes (B2, B3)",
    )
    result.add_argument(
        "--client-calls",
        type=_positive_int,
        default=_DEFAULTS.client_calls,
        metavar="N",
        help="in-process calls per timing in B6",
    )
    result.add_argument(
        "--max-steal",
        type=_non_negative_float,
        default=_DEFAULTS.max_steal,
        metavar="PERCENT",
        help="measure a triple again (up to --rounds times per figure) when the hypervisor "
        "stole more than this share of CPU time during it; 100 turns this off",
    )
    result.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        metavar="PATH",
        help="where to write the results as JSON",
    )
    result.add_argument("--no-json", action="store_true", help="write no JSON file")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every scenario was measured, 1 when any failed."""
    arguments = parser().parse_args(argv)
    options = Options(
        duration=arguments.duration,
        warmup=arguments.warmup,
        rounds=arguments.rounds,
        users=arguments.users,
        large=arguments.large,
        large_users=arguments.large_users,
        instructions=arguments.instructions,
        instruction_calls=arguments.instruction_calls,
        memberships_per_user=arguments.memberships_per_user,
        bcrypt_cost=arguments.bcrypt_cost,
        client_calls=arguments.client_calls,
        max_steal=arguments.max_steal,
        scenarios=arguments.only,
        json_path=None if arguments.no_json else arguments.json,
    )
    report, succeeded = run(options)
    context = report.context
    print(
        f"\nWatchword benchmark: {context['cores']} cores, PostgreSQL {context['postgresql']}, "
        f"{context['h2load']}, {context['seconds']}s"
    )
    steal = context["steal"]
    print(
        f"CPU steal during the counted triples: median {steal['median_percent']:g}%, "
        f"max {steal['max_percent']:g}% (limit {steal['limit_percent']:g}%; "
        f"{steal['redone']} measured again, {steal['over_limit']} counted over the limit)\n"
    )
    print(report.table())
    if options.json_path is not None:
        report.write_json(options.json_path)
        print(f"\nJSON: {options.json_path}")
    return 0 if succeeded else 1
