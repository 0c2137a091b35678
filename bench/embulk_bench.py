"""Embulk 0.11 against ours on the same gzip CSV: the read path (a null output) and the rows printed.

    .venv/bin/python bench/embulk_bench.py --rows 1000000 --repeat 3

Four runs per size, each repeated and the median reported: Embulk and ours, gzip CSV (the audience of
pipelines.devstack.sample, typed as configs/send_audience_to_kafka.yml.liquid types it) -> a null output,
then -> stdout as CSV (Embulk's stdout output; ours with `formatter: {type: csv}`) into a file.
Needs no stack; needs java (17) and mvn on PATH. The first run sets Embulk up from Maven Central into
$PIPELINES_CACHE/embulk (or bench/.work/embulk/), once. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    BENCH,
    PIPELINES,
    REPO,
    Measured,
    audience_gzip,
    count_lines,
    last_line,
    machine,
    markdown_table,
    measure,
    stdout_to,
)

EMBULK = "0.11.4"
CORE = [  # on one flat classpath, with their dependencies (no executable jar)
    f"org.embulk:embulk-core:{EMBULK}",
    f"org.embulk:embulk-deps:{EMBULK}",
    "org.embulk:embulk-spi:0.11",
    "ch.qos.logback:logback-classic:1.3.14",
]
# embulk.properties `plugins.<kind>.<name>=maven:org.embulk:<name>:<version>`: the artifact
# org.embulk:embulk-<kind>-<name>, loaded from <embulk_home>/lib/m2/repository.
PLUGINS = {
    ("input", "file"): "0.11.1",
    ("decoder", "gzip"): "0.11.1",
    ("parser", "csv"): "0.11.6",
    ("output", "stdout"): "0.11.1",
    ("output", "null"): "0.11.1",
}
# mvn's default maven-dependency-plugin (2.8) fails on these poms.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.bench</groupId><artifactId>embulk-classpath</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{}
  </dependencies>
</project>
"""
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%z"  # parses the sample's 2026-11-01T12:00:00Z
# Embulk's log lines (sent to --log-path, so never among its stdout rows; filtered out anyway).
LOG_LINE = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [+-]\d{4} \[")
MAIN_CONFIG = REPO / "configs" / "send_audience_to_kafka.yml.liquid"
GOALS = (  # ours against Embulk, same output: (what, metric, bound, at least?)
    ("rows/s", "rps", 1.5, True),
    ("CPU s", "cpu", 0.5, False),
    ("peak RSS", "rss", 0.25, False),
)


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows",
        default="1000000",
        help="rows, or a comma list of sizes, e.g. 1000000,10000000 (default: %(default)s)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each, the median reported (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=BENCH / ".work",
        help="cached audiences, configs and logs",
    )
    parser.add_argument(
        "--embulk-home",
        type=Path,
        help="Embulk's jars and plugins (default: $PIPELINES_CACHE/embulk or WORK_DIR/embulk)",
    )
    parser.add_argument(
        "--keep-output",
        action="store_true",
        help="keep the stdout runs' output files (deleted once counted)",
    )
    args = parser.parse_args()
    args.sizes = [int(n.replace("_", "")) for n in args.rows.split(",") if n.strip()]
    if not args.sizes or min(args.sizes) < 1 or args.repeat < 1:
        parser.error("--rows needs sizes >= 1 and --repeat >= 1")
    cache = os.environ.get("PIPELINES_CACHE")
    args.work_dir = args.work_dir.resolve()
    args.embulk_home = (
        args.embulk_home
        or (Path(cache) / "embulk" if cache else args.work_dir / "embulk")
    ).resolve()
    return args


# --- Embulk, set up once ---------------------------------------------------------------------------


def maven(repo: Path, *args: str) -> None:
    """mvn in batch mode against the local repository `repo`; exits with its output when it fails."""
    command = ["mvn", "-q", "-B", f"-Dmaven.repo.local={repo}", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "".join((done.stdout + done.stderr).splitlines(True)[-20:])
        sys.exit(
            f"error: setting Embulk up: {' '.join(command)} exited {done.returncode}\n{tail}"
        )


def setup_embulk(home: Path) -> tuple[Path, float | None]:
    """Embulk's jars and plugins from Maven Central into `home`, once: returns the java @argfile holding
    the classpath, and the seconds the set-up took now (None when it was already there)."""
    argfile = home / "java.args"
    if argfile.exists():
        return argfile, None
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if missing:
        sys.exit(
            f"error: {' and '.join(missing)} not on PATH: needed to set Embulk up and run it"
        )
    print(
        f"setting up Embulk {EMBULK} into {home} (once, from Maven Central)",
        file=sys.stderr,
    )
    started = time.monotonic()
    classpath = fetch_embulk(home)
    seconds = time.monotonic() - started
    (home / "setup-seconds.txt").write_text(f"{seconds:.0f}\n")
    # Written last: its presence means the set-up is complete.
    argfile.with_suffix(".tmp").write_text(f'-cp\n"{classpath}"\n')
    os.replace(argfile.with_suffix(".tmp"), argfile)
    print(f"Embulk set up in {seconds:.0f} s", file=sys.stderr)
    return argfile, seconds


def fetch_embulk(home: Path) -> str:
    """The core jars' classpath (resolved by a generated pom) and the plugins, all into the m2 repository
    where Embulk looks for `maven:` plugins, and embulk.properties naming the plugins."""
    home.mkdir(parents=True, exist_ok=True)
    repo = home / "lib" / "m2" / "repository"
    pom, classpath = home / "classpath-pom.xml", home / "classpath.txt"
    dependency = (
        "    <dependency><groupId>{}</groupId><artifactId>{}</artifactId>"
        "<version>{}</version></dependency>"
    )
    pom.write_text(
        POM.format("\n".join(dependency.format(*c.split(":")) for c in CORE))
    )
    goal = f"{DEPENDENCY_PLUGIN}:build-classpath"
    maven(repo, "-f", str(pom), goal, f"-Dmdep.outputFile={classpath}")
    for (kind, name), version in PLUGINS.items():
        artifact = f"org.embulk:embulk-{kind}-{name}:{version}"
        maven(repo, f"{DEPENDENCY_PLUGIN}:get", f"-Dartifact={artifact}")
    (home / "embulk.properties").write_text(
        "".join(
            f"plugins.{kind}.{name}=maven:org.embulk:{name}:{version}\n"
            for (kind, name), version in PLUGINS.items()
        )
    )
    return classpath.read_text().strip()


# --- the runs --------------------------------------------------------------------------------------


def columns() -> list[tuple[str, str]]:
    """The parser columns of the main import config (names and types), in order."""
    found = re.findall(r"- \{name: (\w+), type: (\w+)\}", MAIN_CONFIG.read_text())
    from pipelines.devstack.sample import HEADER

    if [name for name, _ in found] != HEADER.strip().split(","):
        sys.exit(
            f"error: the columns of {MAIN_CONFIG} ({found}) are not the sample's ({HEADER.strip()})"
        )
    return found


def embulk_config(gzip: Path, output: str) -> str:
    cols = "".join(
        f"      - {{name: {name}, type: {kind}"
        + (f', format: "{TIMESTAMP_FORMAT}"' if kind == "timestamp" else "")
        + "}\n"
        for name, kind in columns()
    )
    return (
        f"in:\n  type: file\n  path_prefix: {gzip}\n  decoders:\n    - {{type: gzip}}\n"
        '  parser:\n    type: csv\n    charset: UTF-8\n    newline: LF\n    delimiter: ","\n'
        "    skip_header_lines: 1\n    stop_on_invalid_record: true\n"
        f"    columns:\n{cols}"
        f'out:\n  type: "{output}"\n'  # quoted: a bare null is YAML's null
    )


def ours_config(gzip: Path, output: str, folder: Path) -> str:
    cols = "".join(
        f"      - {{name: {name}, type: {kind}}}\n" for name, kind in columns()
    )
    out = (
        "out: {type: stdout, formatter: {type: csv, header_line: false}}\n"  # rows as Embulk prints them
        if output == "stdout"
        else f'out: {{type: "{output}"}}\n'
    )
    return (
        f"in:\n  type: file\n  path_prefix: {gzip}\n  decoders: [{{type: gzip}}]\n"
        f"  parser:\n    type: csv\n    skip_header_lines: 1\n    columns:\n{cols}"
        + out
        + f"exec:\n  max_threads: 1\n  work_dir: {folder / 'ours-work'}\n  error_output: {folder / 'ours-errors'}/\n"
    )


@dataclass
class Case:
    tool: str  # "embulk" or "ours"
    output: str  # "null" or "stdout"
    measured: list[Measured] = field(
        default_factory=list
    )  # the runs that passed their check
    problems: list[str] = field(default_factory=list)  # one per run that did not
    command: str = ""  # the last run's
    output_bytes: int = 0
    executor: str = ""  # Embulk's log: how many threads and tasks it used

    @property
    def label(self) -> str:
        return LABELS[self.tool, self.output]


LABELS = {
    ("embulk", "null"): f"Embulk {EMBULK}, gzip CSV -> null",
    ("embulk", "stdout"): f"Embulk {EMBULK}, gzip CSV -> stdout (CSV)",
    ("ours", "null"): "ours, gzip CSV -> null",
    ("ours", "stdout"): "ours, gzip CSV -> stdout (CSV)",
}


Results = dict[int, dict[tuple[str, str], Case]]  # rows -> (tool, output) -> its runs


def command_of(
    case: Case, config: Path, log: Path, argfile: Path, home: Path
) -> list[str]:
    if case.tool == "embulk":
        return [
            "java",
            f"@{argfile}",
            "org.embulk.cli.Main",
            "--log-path",
            str(log),
            "-X",
            f"embulk_home={home}",
            "run",
            str(config),
        ]
    return [PIPELINES, "run", str(config)]


def run_case(
    case: Case,
    rows: int,
    gzip: Path,
    folder: Path,
    argfile: Path,
    args: argparse.Namespace,
) -> None:
    """One run of `case`: measured, its rows checked, its output file counted and removed."""
    name = f"{case.tool}-{case.output}-r{rows}"
    config, log, out = (
        folder / f"{name}.yml",
        folder / f"{name}.log",
        folder / f"{name}.out",
    )
    config.write_text(
        embulk_config(gzip, case.output)
        if case.tool == "embulk"
        else ours_config(gzip, case.output, folder)
    )
    log.unlink(missing_ok=True)  # Embulk appends to its --log-path
    command = command_of(case, config, log, argfile, args.embulk_home)
    print(f"running {case.label}, {rows:,} rows", file=sys.stderr)
    measured = measure(
        stdout_to(out, command),
        stderr=folder / f"{name}.err" if case.tool == "embulk" else log,
    )
    case.command = f"{shlex.join(command)} > {out}"
    check = check_embulk if case.tool == "embulk" else check_ours
    problem = check(case, measured, rows, gzip, log, out)
    case.output_bytes = out.stat().st_size if out.exists() else 0
    if problem:
        case.problems.append(f"{problem} (log: {log})")
    else:
        case.measured.append(measured)
    if not args.keep_output:
        out.unlink(missing_ok=True)


def check_embulk(
    case: Case, measured: Measured, rows: int, gzip: Path, log: Path, out: Path
) -> str | None:
    """Embulk logs no record count: its stdout rows are counted; for the null output, a run that exits 0
    with stop_on_invalid_record (any bad row fails it) and read the file has parsed every row."""
    text = log.read_text(errors="replace") if log.exists() else ""
    if measured.returncode != 0:
        return f"exited {measured.returncode}"
    case.executor = next(
        (
            line.split("): ", 1)[-1]
            for line in text.splitlines()
            if "thread executor" in line
        ),
        "",
    )
    if f"Loading files [{gzip}]" not in text or "Committed." not in text:
        return "its log shows no committed run of the file"
    if case.output == "stdout":
        got = count_lines(out, unless=LOG_LINE)
        if got != rows:
            return f"printed {got:,} rows, expected {rows:,}"
    return None


def check_ours(
    case: Case, measured: Measured, rows: int, gzip: Path, log: Path, out: Path
) -> str | None:
    """The summary (the last stdout line) counts the rows read and written; the printed rows are counted."""
    if measured.returncode != 0:
        return f"exited {measured.returncode}"
    summary = json.loads(last_line(out) or "{}")
    got = (
        summary.get("status"),
        summary.get("objects"),
        summary.get("rows_read"),
        summary.get("rows_written"),
    )
    if got != ("succeeded", 1, rows, rows):
        return (
            f"summary {summary}, expected 1 object and {rows:,} rows read and written"
        )
    if case.output == "stdout" and count_lines(out) - 1 != rows:
        return f"printed {count_lines(out) - 1:,} rows, expected {rows:,}"
    return None


# --- the table -------------------------------------------------------------------------------------


def medians(case: Case, rows: int) -> dict[str, float] | None:
    if not case.measured:
        return None
    wall = statistics.median(m.wall for m in case.measured)
    return {
        "rps": rows / wall,
        "cpu": statistics.median(m.cpu for m in case.measured),
        "rss": statistics.median(m.max_rss_mb for m in case.measured),
    }


def cells(case: Case, rows: int, embulk: Case) -> list[str]:
    mine, theirs = medians(case, rows), medians(embulk, rows)
    count = f"{rows:,}" + (
        "*" if case.tool == "embulk" and case.output == "null" else ""
    )
    if case.problems:
        runs = len(case.problems) + len(case.measured)
        count = f"FAILED ({len(case.problems)} of {runs})"
    if mine is None:
        return [case.label, count] + ["n/a"] * 6
    line = [
        case.label,
        count,
        f"{mine['rps']:,.0f}",
        f"{mine['cpu']:,.2f}",
        f"{mine['rss']:,.0f}",
    ]
    if case.tool == "embulk" or theirs is None:
        return line + [""] * 3
    return line + [f"{mine[k] / theirs[k]:.2f}" for k in ("rps", "cpu", "rss")]


def goals(case: Case, rows: int, embulk: Case) -> str:
    mine, theirs = medians(case, rows), medians(embulk, rows)
    if mine is None or theirs is None or case.problems or embulk.problems:
        return f"  {rows:,} rows, {case.output}: n/a (a run failed)"
    parts = []
    for what, key, bound, at_least in GOALS:
        ratio = mine[key] / theirs[key]
        met = ratio >= bound if at_least else ratio <= bound
        parts.append(
            f"{what} {ratio:.2f}x ({'>=' if at_least else '<='} {bound}x: {'met' if met else 'NOT met'})"
        )
    return f"  {rows:,} rows, {case.output}: " + "; ".join(parts)


HEADER = [
    "run",
    "rows",
    "rows/s",
    "CPU s",
    "peak RSS MiB",
    "x Embulk rows/s",
    "x CPU",
    "x RSS",
]
NOTE = (
    "rows/s: rows / wall seconds of the whole command (JVM or Python start-up included). "
    "CPU s: user+sys of the process. peak RSS: its ru_maxrss.\n"
    "* Embulk logs no record count for a null output: checked by exit 0 with "
    "stop_on_invalid_record: true and its log loading the file.\n"
    "stdout runs write into a file; both print the rows as CSV, without a header line."
)


def report(results: Results, args: argparse.Namespace, setup: float | None) -> None:
    """The table, the goals under it, then what the numbers mean and what a failed run said."""
    lines = [
        cells(case, rows, cases["embulk", case.output])
        for rows, cases in results.items()
        for case in cases.values()
    ]
    print(
        f"\nEmbulk {EMBULK} against ours, the same gzip CSV, median of {args.repeat} run(s)"
    )
    print(machine(None, with_kcat=False) + f", {java_version()}")
    print()
    print(markdown_table(HEADER, lines))
    print("\ngoals, ours against Embulk with the same output:")
    for rows, cases in results.items():
        for output in ("null", "stdout"):
            print(goals(cases["ours", output], rows, cases["embulk", output]))
    print("\n" + NOTE)
    notes(results, args.embulk_home, setup)


def notes(results: Results, home: Path, setup: float | None) -> None:
    for rows, cases in results.items():
        stdout = [c for c in cases.values() if c.output == "stdout"]
        sizes = ", ".join(f"{c.label}: {c.output_bytes / 1e6:,.0f} MB" for c in stdout)
        print(f"output of the stdout runs at {rows:,} rows: {sizes}")
        executor = cases["embulk", "null"].executor or "?"
        print(f"Embulk's executor (its default on {os.cpu_count()} CPUs): {executor}")
    record = home / "setup-seconds.txt"
    if setup is None and record.exists():
        setup = float(record.read_text())
    print(f"Embulk's set-up took {setup or float('nan'):.0f} s; cached in {home}")
    failed = [
        f"  {case.label}, {rows:,} rows: {problem}"
        for rows, cases in results.items()
        for case in cases.values()
        for problem in case.problems
    ]
    if failed:
        print("\nFAILED runs:\n" + "\n".join(failed))


def java_version() -> str:
    done = subprocess.run(
        ["java", "-version"], capture_output=True, text=True, check=False
    )
    return (done.stderr.splitlines() or ["java ?"])[0].replace('"', "")


def main() -> None:
    args = options()
    argfile, setup = setup_embulk(args.embulk_home)
    folder = args.work_dir / "embulk-bench"
    folder.mkdir(parents=True, exist_ok=True)
    results: Results = {}
    for rows in args.sizes:
        gzip = audience_gzip(args.work_dir, rows, args.seed).resolve()
        cases = {
            (tool, output): Case(tool, output)
            for output in ("null", "stdout")
            for tool in ("embulk", "ours")
        }
        results[rows] = {
            key: cases[key]
            for key in sorted(cases, key=lambda k: (k[0] != "embulk", k[1]))
        }
        # Interleaved, so that noise spreads over all of them.
        for _ in range(args.repeat):
            for case in cases.values():
                run_case(case, rows, gzip, folder, argfile, args)
    report(results, args, setup)
    print("\ncommands (the last run of each):")
    for rows, cases in results.items():
        for case in cases.values():
            print(f"  {case.label}, {rows:,} rows: {case.command}")
    if any(case.problems for cases in results.values() for case in cases.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
