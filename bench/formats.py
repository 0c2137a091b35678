"""Format matrix: our import and export through every file format, compression and value format.

    eval "$(.venv/bin/pipelines dev up)"
    .venv/bin/python bench/formats.py --rows 1000000

Imports: the same audience rows as CSV, JSON lines and Avro container files, each gzip, zstd or
plain, from local S3 into a fresh topic of JSON values or of Avro values (schema registry): 18 cells.
Exports: a topic of JSON values and one of Avro values (filled by two of those imports) into CSV,
JSON lines and Avro files, gzip or zstd: 12 cells. Every cell is one `pipelines run` in one process,
of a config derived from the main one (configs/); "x main" compares its rows/s with the main path's
(csv gzip -> json; json topic -> csv gzip) of the same script run. See bench/README.md.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from common import (
    BUCKET,
    PIPELINES,
    REPO,
    Audience,
    Measured,
    Row,
    arguments,
    count_committed,
    delete_subjects,
    delete_topics,
    machine,
    markdown_table,
    measure,
    measured_cells,
    new_topic,
    prepare_audience,
    read_json_object,
    registry_url,
    stack_env,
    summary_of,
    upload,
)

FILE_FORMATS = ("csv", "jsonl", "avro")
IMPORT_COMPRESSIONS = ("gzip", "zstd", "none")
EXPORT_COMPRESSIONS = ("gzip", "zstd")
VALUE_FORMATS = ("json", "avro")
MAIN_IMPORT = "csv gzip -> json"
MAIN_EXPORT = "json topic -> csv gzip"
SOURCES = {
    "json": MAIN_IMPORT,
    "avro": "csv gzip -> avro",
}  # the imports that fill the export sources
EXTENSIONS = {"gzip": ".gz", "zstd": ".zst", "none": ""}
AVRO_CODECS = {
    "gzip": "deflate",
    "zstd": "zstandard",
}  # the Avro formatter takes no encoders
EXPORT_PREFIX = "exports/formats/"
AVRO_BLOCK_BYTES = (
    64_000  # the Avro inputs' blocks: the Java writer's default sync interval
)

# The file schema of the Avro inputs: the CSV's columns, typed (no nulls in the sample audience).
AVRO_FILE_SCHEMA = {
    "type": "record",
    "name": "AudienceRow",
    "namespace": "bench",
    "fields": [
        {"name": "user_id", "type": "string"},
        {"name": "country", "type": "string"},
        {"name": "score", "type": "double"},
        {"name": "opted_in", "type": "boolean"},
        {
            "name": "updated_at",
            "type": {"type": "long", "logicalType": "timestamp-micros"},
        },
    ],
}


@dataclass
class Cell:
    """One run of the matrix: an import (file -> values) or an export (values -> file)."""

    name: str
    kind: str  # "import" or "export"
    file_format: str
    compression: str
    values: str  # json or avro: the topic's values
    row: Row | None = None
    failure: str = ""  # why it failed ("" if it did not)
    topic: str = ""  # an import's topic


def main() -> None:
    args = parse_arguments()
    args.work_dir = args.work_dir.resolve()  # the runs start in the repository
    env = stack_env()
    env["SCHEMA_REGISTRY_URL"] = registry_url()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    imports = select(import_cells(), args.only)
    exports = select(export_cells(), args.only)
    if not imports + exports:
        names = ", ".join(c.name for c in import_cells() + export_cells())
        sys.exit(f"error: no cell's name holds {args.only!r}; the cells: {names}")
    imports = with_sources(imports, exports)
    audience = prepare_audience(args.work_dir, args.rows, args.seed, 4)
    inputs = prepare_inputs(audience, args.work_dir, args.seed, imports)
    configs = args.work_dir / "formats-configs"
    sources: dict[str, str] = {}
    try:
        for cell in imports:
            guarded(cell, run_import, cell, inputs, configs, args, env)
            if cell.name in SOURCES.values() and not cell.failure:
                sources[cell.values] = cell.topic
            elif not args.keep_topics:
                drop_topics([cell])
        for cell in exports:
            guarded(
                cell, run_export, cell, sources.get(cell.values), configs, args, env
            )
    finally:
        if not args.keep_topics:
            drop_topics([c for c in imports if c.topic in sources.values()])
    report(imports, exports, inputs, args)
    sys.exit(1 if any(c.failure for c in imports + exports) else 0)


def parse_arguments():
    parser = arguments(__doc__)
    parser.add_argument(
        "--only",
        metavar="SUBSTRING",
        help="run only the cells whose name holds it (and the main paths, for x main)",
    )
    parser.add_argument(
        "--keep-topics",
        action="store_true",
        help="do not delete the topics (and their registry subjects) at the end",
    )
    return parser.parse_args()


# --- the cells -------------------------------------------------------------------------------------


def import_cells() -> list[Cell]:
    return [
        Cell(f"{f} {c} -> {v}", "import", f, c, v)
        for f in FILE_FORMATS
        for c in IMPORT_COMPRESSIONS
        for v in VALUE_FORMATS
    ]


def export_cells() -> list[Cell]:
    return [
        Cell(f"{v} topic -> {f} {c}", "export", f, c, v)
        for v in VALUE_FORMATS
        for f in FILE_FORMATS
        for c in EXPORT_COMPRESSIONS
    ]


def select(cells: list[Cell], only: str | None) -> list[Cell]:
    """The cells whose name holds `only`, plus the main path if any is selected (for x main)."""
    if only is None:
        return cells
    chosen = [c for c in cells if only in c.name]
    return [
        c
        for c in cells
        if c in chosen or (chosen and c.name in (MAIN_IMPORT, MAIN_EXPORT))
    ]


def with_sources(imports: list[Cell], exports: list[Cell]) -> list[Cell]:
    """The imports, plus the main import (the x main reference) and those filling the exports' topics."""
    names = (
        {MAIN_IMPORT} | {SOURCES[c.values] for c in exports} | {c.name for c in imports}
    )
    return [c for c in import_cells() if c.name in names]


# --- the input files -------------------------------------------------------------------------------


@dataclass
class InputFile:
    path: Path
    key: str  # in s3://bench/

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def prepare_inputs(
    audience: Audience, work: Path, seed: int, imports: list[Cell]
) -> dict[tuple[str, str], InputFile]:
    """Each (format, compression) the imports read, written once from the audience's rows (cached
    in work/formats-r<rows>-s<seed>/) and uploaded to s3://bench/formats/r<rows>-s<seed>/<format>-<compression>/."""
    folder = work / f"formats-r{audience.rows}-s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    inputs = {}
    for file_format, compression in dict.fromkeys(
        (c.file_format, c.compression) for c in imports
    ):
        if (file_format, compression) == ("csv", "gzip"):  # the main import's own file
            inputs["csv", "gzip"] = InputFile(audience.whole, audience.whole_key)
            continue
        plain = folder / f"audience.{file_format}"
        if not plain.exists():
            write_plain(file_format, audience, plain)
        path = compress(plain, compression)
        # a folder each: a key is a prefix to the input, and audience.csv is one of audience.csv.gz
        key = (
            f"formats/r{audience.rows}-s{seed}/{file_format}-{compression}/{path.name}"
        )
        upload(path, key)
        inputs[file_format, compression] = InputFile(path, key)
    return inputs


def write_plain(file_format: str, audience: Audience, path: Path) -> None:
    print(f"writing {path}", file=sys.stderr)
    temporary = path.with_name(path.name + ".tmp")
    if file_format == "csv":
        from pipelines.devstack.sample import HEADER

        with open(audience.lines, "rb") as lines, open(temporary, "wb") as out:
            out.write(HEADER.encode())
            shutil.copyfileobj(lines, out, 1 << 20)
    elif file_format == "jsonl":
        write_jsonl(audience.lines, temporary)
    else:
        write_avro(audience.lines, temporary)
    temporary.replace(path)


def typed_rows(lines: Path):
    """The rows of the headerless CSV lines as typed values (score float, opted_in bool, updated_at
    microseconds since the epoch). Preparation only, once per audience: not measured."""
    from datetime import datetime

    with open(lines, encoding="utf-8") as f:
        for line in f:
            user_id, country, score, opted_in, updated_at = line.rstrip("\r\n").split(
                ","
            )
            micros = int(datetime.fromisoformat(updated_at).timestamp()) * 1_000_000
            yield user_id, country, float(score), opted_in == "true", updated_at, micros


def write_jsonl(lines: Path, path: Path) -> None:
    """One JSON object a row, typed as the CSV parser types it (the timestamp as its ISO text)."""
    import orjson

    keys = ("user_id", "country", "score", "opted_in", "updated_at")
    with open(path, "wb") as out:
        out.writelines(
            orjson.dumps(dict(zip(keys, row[:5], strict=True))) + b"\n"
            for row in typed_rows(lines)
        )


def write_avro(lines: Path, path: Path) -> None:
    """An Avro object container file, codec null: the gzip or zstd around it is the file's compression."""
    import fastavro

    keys = ("user_id", "country", "score", "opted_in")
    records = (
        {**dict(zip(keys, row[:4], strict=True)), "updated_at": row[5]}
        for row in typed_rows(lines)
    )
    with open(path, "wb") as out:
        schema = fastavro.parse_schema(AVRO_FILE_SCHEMA)
        fastavro.writer(
            out, schema, records, codec="null", sync_interval=AVRO_BLOCK_BYTES
        )


def compress(plain: Path, compression: str) -> Path:
    """plain gzip'ed (ISA-L level 1, as pipelines.devstack.sample writes the CSV) or zstd'ed (level 3),
    once; plain itself for none."""
    path = plain.with_name(plain.name + EXTENSIONS[compression])
    if compression == "none" or path.exists():
        return path
    temporary = path.with_name(path.name + ".tmp")
    with open(plain, "rb") as src, open(temporary, "wb") as raw:
        if compression == "gzip":
            from isal import igzip

            with igzip.open(raw, "wb", compresslevel=1) as out:
                shutil.copyfileobj(src, out, 1 << 20)
        else:
            import zstandard

            compressor = zstandard.ZstdCompressor(level=3)
            compressor.copy_stream(src, raw, size=plain.stat().st_size)
    temporary.replace(path)
    return path


# --- the configs -----------------------------------------------------------------------------------


def derived_config(
    folder: Path, name: str, base: str, swaps: list[tuple[str, str]]
) -> Path:
    """configs/<base> with each (old, new) swapped once, written as folder/<name>.yml.liquid next to a
    copy of the Kafka partial it includes. Exits if the main config no longer holds an `old`."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(
        REPO / "configs" / "_kafka.yml.liquid", folder / "_kafka.yml.liquid"
    )
    text = (REPO / "configs" / base).read_text()
    for old, new in swaps:
        if text.count(old) != 1:
            sys.exit(
                f"error: configs/{base} no longer holds {old!r} once: update bench/formats.py"
            )
        text = text.replace(old, new)
    path = folder / f"{name}.yml.liquid"
    path.write_text(text)
    return path


def import_config(folder: Path, cell: Cell) -> Path:
    """The main import config (JSON values) or its Avro twin, with the cell's decoders and parser."""
    decoders = (
        "[{type: none}]"
        if cell.compression == "none"
        else f"[{{type: {cell.compression}}}]"
    )
    parser = {"csv": "type: csv\n    skip_header_lines: 1\n"}.get(
        cell.file_format, f"type: {cell.file_format}\n"
    )
    base = {
        "json": "send_audience_to_kafka.yml.liquid",
        "avro": "send_audience_to_kafka_avro.yml.liquid",
    }
    swaps = [
        ("decoders: [{type: gzip}]", f"decoders: {decoders}"),
        ("type: csv\n    skip_header_lines: 1\n", parser),
    ]
    return derived_config(folder, slug(cell.name), base[cell.values], swaps)


def export_config(folder: Path, cell: Cell) -> Path:
    """The main export config with the cell's formatter and encoders (Avro: its codec instead)."""
    if cell.file_format == "avro":
        out = (
            f"formatter:\n    type: avro\n    codec: {AVRO_CODECS[cell.compression]}\n"
        )
    else:
        header = "\n    header_line: true" if cell.file_format == "csv" else ""
        out = f"formatter:\n    type: {cell.file_format}{header}\n  encoders: [{{type: {cell.compression}}}]\n"
    swaps = [
        (
            "formatter:\n    type: csv\n    header_line: true\n  encoders: [{type: gzip}]\n",
            out,
        )
    ]
    return derived_config(
        folder, slug(cell.name), "export_audience_to_s3.yml.liquid", swaps
    )


def slug(name: str) -> str:
    return name.replace(" -> ", "-to-").replace(" ", "-")


# --- running ---------------------------------------------------------------------------------------


def run_import(
    cell: Cell, inputs: dict[tuple[str, str], InputFile], configs: Path, args, env
) -> None:
    """`pipelines run` of the cell's config in one process (MAX_THREADS=1, one shard) into a fresh
    topic; checked by the summary's rows_written and a read_committed count of the topic."""
    from pipelines.engine.plan import DEFAULT_SHARD_BYTES

    source = inputs[cell.file_format, cell.compression]
    cell.topic = new_topic(f"formats-{slug(cell.name)}", args.partitions)
    print(f"running {cell.name} into {cell.topic}", file=sys.stderr)
    variables = {
        "S3_BUCKET": BUCKET,
        "S3_KEY": source.key,
        "KAFKA_TOPIC": cell.topic,
        "MAX_THREADS": 1,
    }
    command = pipelines_run(import_config(configs, cell), variables)
    if (
        source.size >= DEFAULT_SHARD_BYTES
    ):  # a plain file that large would be split: keep one shard
        command += ["--shard-size", str(source.size + 1)]
    measured, log = run_logged(command, env, args.work_dir, cell.topic)
    cell.row = Row(cell.name, args.rows, measured, source.size)
    cell.failure = run_failure(measured, log, args.rows) or topic_failure(
        cell.topic, args.rows, args.partitions
    )


def run_export(cell: Cell, topic: str | None, configs: Path, args, env) -> None:
    """`pipelines run` of the cell's config in one process (MAX_THREADS=1, one shard) into
    s3://bench/exports/formats/<cell>/; checked by the summary's rows_written and the manifest's rows.
    The files are deleted afterwards."""
    from export_bench import delete_prefix

    cell.row = Row(cell.name)
    if topic is None:
        cell.failure = f"no source topic: {SOURCES[cell.values]} failed or did not run"
        return
    print(f"running {cell.name} from {topic}", file=sys.stderr)
    prefix = f"{EXPORT_PREFIX}{slug(cell.name)}/"
    variables = {
        "KAFKA_TOPIC": topic,
        "EXPORT_BUCKET": BUCKET,
        "EXPORT_PREFIX": prefix,
        "MAX_THREADS": 1,
    }
    if cell.values == "avro":
        variables["KAFKA_SERIALIZE_FORMAT"] = "avro"
    command = pipelines_run(export_config(configs, cell), variables)
    measured, log = run_logged(
        command, env, args.work_dir, f"formats-export-{slug(cell.name)}"
    )
    cell.failure = run_failure(measured, log, args.rows)
    if not cell.failure:
        cell.failure, nbytes = manifest_check(
            f"{prefix}{summary_of(measured)['job_id']}/", args.rows
        )
        cell.row = Row(cell.name, args.rows, measured, nbytes)
    delete_prefix(prefix)


def pipelines_run(config: Path, variables: dict[str, object]) -> list[str]:
    return [
        PIPELINES,
        "run",
        str(config),
        *[a for k, v in variables.items() for a in ("--var", f"{k}={v}")],
    ]


def run_logged(
    command: list[str], env: dict[str, str], work: Path, name: str
) -> tuple[Measured, Path]:
    log = work / f"{name}.log"
    return measure(command, env, stdout=work / f"{name}.out", stderr=log), log


def run_failure(measured: Measured, log: Path, rows: int) -> str:
    """Why the run failed ("" if it did not): its error from the log, or a wrong row count."""
    if measured.returncode != 0:
        return f"exit {measured.returncode}: {log_reason(log)} (log: {log})"
    try:
        summary = summary_of(measured)
    except ValueError:
        return f"no JSON summary on stdout (log: {log})"
    if summary.get("status") != "succeeded" or summary.get("rows_written") != rows:
        return (
            f"status {summary.get('status')}, rows_written {summary.get('rows_written')}, "
            f"expected {rows:,} (log: {log})"
        )
    return ""


def log_reason(log: Path) -> str:
    """The last line of the log saying "error", else its last line."""
    lines = [
        line.strip()
        for line in log.read_text(errors="replace").splitlines()
        if line.strip()
    ]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["(empty log)"])[-1][:300]


def topic_failure(topic: str, rows: int, partitions: int) -> str:
    got, markers = count_committed(topic)
    if got != rows or markers != partitions:
        return f"{topic} holds {got:,} committed rows and {markers} end markers, expected {rows:,} and {partitions}"
    return ""


def manifest_check(folder: str, rows: int) -> tuple[str, int]:
    """(why the export's manifest is wrong or "", the bytes of the files it lists)."""
    manifest = read_json_object(f"{folder}_manifest.json")
    listed = sum(f["rows"] for f in manifest["files"])
    nbytes = sum(f["bytes"] for f in manifest["files"])
    if manifest["total_rows"] != rows or listed != rows:
        return (
            f"manifest total_rows {manifest['total_rows']:,}, its files {listed:,}, expected {rows:,}",
            nbytes,
        )
    return "", nbytes


def drop_topics(cells: list[Cell]) -> None:
    """Deletes the cells' topics, and the registry subjects of those with Avro values."""
    delete_topics([c.topic for c in cells if c.topic])
    delete_subjects(
        [f"{c.topic}-value" for c in cells if c.topic and c.values == "avro"]
    )


def guarded(cell: Cell, run, *args) -> None:
    """run(*args); an exception fails the cell (and the script goes on to the next)."""
    try:
        run(*args)
    except Exception as exc:  # noqa: BLE001 - any error of one cell is that cell's failure
        cell.failure = f"{type(exc).__name__}: {exc}"


# --- the report ------------------------------------------------------------------------------------


def report(
    imports: list[Cell],
    exports: list[Cell],
    inputs: dict[tuple[str, str], InputFile],
    args,
) -> None:
    header = ["path", "rows/s", "MB/s", "CPU s", "peak RSS MB", "x main"]
    lines = table_lines(imports, MAIN_IMPORT) + table_lines(exports, MAIN_EXPORT)
    print(
        f"\nformat matrix: {args.rows:,} rows (seed {args.seed}), {args.partitions} partitions, one process a cell"
    )
    print(machine(None, with_kcat=False))
    print()
    print(markdown_table(header, lines))
    print()
    for note in footnotes(inputs):
        print(note)
    for cell in imports + exports:
        if cell.failure:
            print(f"failed: {cell.name}: {cell.failure}")
    commands = args.work_dir / "formats-commands.txt"
    commands.write_text(
        "".join(
            f"{c.name}: {shlex.join(c.row.measured.command)}\n"
            for c in imports + exports
            if c.row and c.row.measured
        )
    )
    print(f"commands: {commands}; configs: {args.work_dir / 'formats-configs'}/")


def table_lines(cells: list[Cell], main_name: str) -> list[list[str]]:
    main = next(
        (c.row.rows_per_second for c in cells if c.name == main_name and not c.failure),
        None,
    )
    lines = []
    for cell in cells:
        if cell.failure or cell.row is None or cell.row.rows_per_second is None:
            lines.append([cell.name, "failed", "", "", "", ""])
        else:
            ratio = f"{cell.row.rows_per_second / main:.2f}" if main else "n/a"
            lines.append([cell.name, *measured_cells(cell.row), ratio])
    return lines


def footnotes(inputs: dict[tuple[str, str], InputFile]) -> list[str]:
    sizes = ", ".join(f"{f} {c} {i.size / 1e6:,.1f}" for (f, c), i in inputs.items())
    return [
        (
            "MB/s: imports the input file's bytes (as stored, compressed), exports the "
            "output files' bytes (the manifest's sum), / wall seconds of `pipelines run`."
        ),
        f"x main: rows/s / the main path's of this run: imports {MAIN_IMPORT}, exports {MAIN_EXPORT}.",
        "Avro inputs: container files of codec null, the whole file gzip'ed or zstd'ed (the decoders undo it).",
        "Avro outputs: the formatter takes no encoders, so gzip is its codec deflate and zstd its codec zstandard.",
        f"Input files in MB: {sizes} (gzip: ISA-L level 1, as the sample audience; zstd: level 3).",
        "Outputs: the export config's defaults (gzip level 6, zstd level 3), files in local S3, deleted after.",
    ]


if __name__ == "__main__":
    main()
