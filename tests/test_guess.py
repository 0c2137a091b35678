"""`pipelines guess`: real-world shapes of customer drops, each guessed through the CLI from local files
(and one from S3 on the moto server), the written config checked key by key, then read back with
`pipelines validate` and `pipelines preview` and the engine's own preview of typed rows."""

from __future__ import annotations

import gzip
import random
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
import zstandard
from click.testing import CliRunner

from pipelines.cli.main import cli
from pipelines.engine.config import load_job, parse_yaml, render
from pipelines.engine.errors import EXIT_CONFIG, EXIT_RUN_FAILED
from pipelines.engine.read import preview_rows

REPO = Path(__file__).resolve().parent.parent
STDOUT_OUT = "out:\n  type: stdout\n"
KAFKA_OUT = "out:\n  type: kafka\n  brokers: [\"127.0.0.1:9092\"]\n  topic: audience-members\n"


# ---------------------------------------------------------------- helpers


def invoke(*args: str | Path):
    return CliRunner().invoke(cli, [str(a) for a in args])


def drop(folder: Path, name: str, data: bytes) -> Path:
    path = folder / "drops" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


def file_seed(folder: Path, prefix: Path, out: str = STDOUT_OUT, parser: str = "") -> Path:
    seed = folder / "seed.yml"
    seed.write_text(f"in:\n  type: file\n  path_prefix: {prefix}\n{parser}{out}", encoding="utf-8")
    return seed


def variables(args: tuple[str, ...]) -> dict[str, str]:
    """The --var values of `args`."""
    return dict(v.split("=", 1) for flag, v in zip(args, args[1:]) if flag == "--var")


def guess(seed: Path, *args: str, output: Path | None = None) -> tuple[dict, str, str]:
    """Runs `pipelines guess`; returns (the config as rendered and loaded, its text, stderr)."""
    output = output or seed.parent / "guessed.yml"
    result = invoke("guess", seed, "-o", output, *args)
    assert result.exit_code == 0, (result.exit_code, result.stderr, result.exception)
    text = output.read_text(encoding="utf-8")
    return parse_yaml(render(output, variables(args)), str(output)), text, result.stderr


def columns(config: dict) -> list[tuple]:
    return [tuple(c.values()) for c in config["in"]["parser"]["columns"]]


def read_back(config: Path, *args: str, rows: int = 5) -> list[list]:
    """`pipelines validate` and `pipelines preview` accept the config; returns the engine's first rows."""
    validated = invoke("validate", config, *args)
    assert validated.exit_code == 0, validated.stderr
    previewed = invoke("preview", config, "--rows", str(rows), *args)
    assert previewed.exit_code == 0, previewed.stderr
    return preview_rows(load_job(config, variables(args)), rows)


def guessed_from(tmp_path: Path, name: str, data: bytes, out: str = STDOUT_OUT, parser: str = "") -> tuple[dict, str, str, list[list]]:
    """The guess of one drop: (config, its text, stderr, its first rows read back)."""
    path = drop(tmp_path, name, data)
    config, text, stderr = guess(file_seed(tmp_path, path, out, parser))
    return config, text, stderr, read_back(tmp_path / "guessed.yml")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


# ---------------------------------------------------------------- shapes


def test_quoted_fields_with_commas_and_line_breaks(tmp_path: Path) -> None:
    text = 'user_id,name,address,score\r\n'
    text += 'u1,"Smith, John","12 High St,\r\nLondon",1.5\r\n'
    text += 'u2,"O""Brien","Dublin",2\r\n'
    text += "".join(f'u{i},"Doe, Jane {i}","Line 1\nLine 2",{i}.25\r\n' for i in range(3, 60))
    config, _, stderr, rows = guessed_from(tmp_path, "people.csv", text.encode())
    parser = config["in"]["parser"]
    assert (parser["type"], parser["delimiter"], parser["quote"], parser["skip_header_lines"]) == ("csv", ",", '"', 1)
    assert columns(config) == [("user_id", "string"), ("name", "string"), ("address", "string"), ("score", "double")]
    assert rows[0] == ["u1", "Smith, John", "12 High St,\r\nLondon", 1.5]
    assert rows[1] == ["u2", 'O"Brien', "Dublin", 2.0]
    assert "preview: 10 row(s) shown of 59 read; none bad" in stderr


def test_every_row_quoting_a_delimiter(tmp_path: Path) -> None:
    """Quoting is chosen even when reading without it splits every row alike (one field more than the header)."""
    text = "user_id,note\n" + "".join(f'u{i},"a, {i}"\n' for i in range(100))
    config, *_, rows = guessed_from(tmp_path, "notes.csv", text.encode())
    assert config["in"]["parser"]["quote"] == '"'
    assert columns(config) == [("user_id", "string"), ("note", "string")]
    assert rows[0] == ["u0", "a, 0"]


def test_cp932_file_with_japanese_names(tmp_path: Path) -> None:
    names = ["山田 太郎", "佐藤 花子", "髙橋 一郎", "渡辺 ①", "ｶﾀｶﾅ ﾀﾛｳ"]  # 髙 and ① exist in CP932 only, not Shift_JIS
    text = "会員ID,氏名,都道府県,ポイント\r\n" + "".join(f"{100 + i},{names[i % 5]},東京都,{i * 10}\r\n" for i in range(200))
    config, text_written, _, rows = guessed_from(tmp_path, "members.csv", text.encode("cp932"), out=KAFKA_OUT)
    assert config["in"]["parser"]["charset"] == "CP932"
    assert columns(config) == [("会員ID", "long"), ("氏名", "string"), ("都道府県", "string"), ("ポイント", "long")]
    assert config["out"]["key_column_name"] == "会員ID"
    assert rows[:5] == [[100 + i, names[i], "東京都", i * 10] for i in range(5)]
    assert "check:" not in text_written


JAPANESE_ROWS = "id,name\n" + "".join(f"{i},鈴木 次郎{i}\n" for i in range(50))


def test_euc_jp(tmp_path: Path) -> None:
    config, *_, rows = guessed_from(tmp_path, "euc.csv", JAPANESE_ROWS.encode("euc_jp"))
    assert config["in"]["parser"]["charset"] == "EUC-JP"
    assert rows[0] == [0, "鈴木 次郎0"]


def test_utf8_with_bom(tmp_path: Path) -> None:
    config, written, _, rows = guessed_from(tmp_path, "bom.csv", b"\xef\xbb\xbf" + JAPANESE_ROWS.encode())
    assert config["in"]["parser"]["charset"] == "UTF-8"
    assert columns(config)[0] == ("id", "long"), "the byte order mark is not part of the first name"
    assert "byte order mark" in written
    assert rows[0] == [0, "鈴木 次郎0"]


def test_charset_decided_on_little_evidence_is_flagged(tmp_path: Path) -> None:
    text = "id,city\n" + "".join(f"{i},Tokyo\n" for i in range(30)) + "31,山田\n"  # its 4 bytes read as CP932 too
    config, written, stderr, _ = guessed_from(tmp_path, "few.csv", text.encode("euc_jp"))
    assert config["in"]["parser"]["charset"] == "EUC-JP"
    assert "# check: charset: EUC-JP decided on 4 non-ASCII bytes, which CP932 reads too" in written
    assert "check: charset: EUC-JP decided on" in stderr


def test_tsv(tmp_path: Path) -> None:
    text = "user_id\tsegment\tcomment\topted_in\n" + "".join(f"u{i}\t{i % 7}\tscreen 5\" wide, {i}\t{'yes' if i % 3 else 'no'}\n" for i in range(100))
    config, _, _, rows = guessed_from(tmp_path, "audience.tsv", text.encode())
    parser = config["in"]["parser"]
    assert (parser["delimiter"], parser["skip_header_lines"]) == ("\t", 1)
    assert columns(config) == [("user_id", "string"), ("segment", "long"), ("comment", "string"), ("opted_in", "boolean")]
    assert rows[1] == ["u1", 1, 'screen 5" wide, 1', True]


def test_headerless_csv(tmp_path: Path) -> None:
    text = "".join(f"u{i:04d},{i * 0.5},2024-03-{i % 28 + 1:02d}T08:00:00+09:00,true\n" for i in range(100))
    config, *_, rows = guessed_from(tmp_path, "noheader.csv", text.encode())
    assert config["in"]["parser"]["skip_header_lines"] == 0
    assert columns(config) == [("c0", "string"), ("c1", "double"), ("c2", "timestamp"), ("c3", "boolean")]
    assert rows[0][:3] == ["u0000", 0.0, datetime.fromisoformat("2024-03-01T08:00:00+09:00")]


def test_text_only_columns_header_is_flagged(tmp_path: Path) -> None:
    text = "email,city\n" + "".join(f"user{i}@example.com,City {i % 9}\n" for i in range(40))
    config, written, _, rows = guessed_from(tmp_path, "emails.csv", text.encode(), out=KAFKA_OUT)
    assert config["in"]["parser"]["skip_header_lines"] == 1
    assert "# check: header: every column is text" in written
    assert "key_column_name" not in config["out"]
    assert "# check: key_column_name: no column looks like a user id" in written
    assert rows[0] == ["user0@example.com", "City 0"]


def test_column_long_for_1000_rows_then_na(tmp_path: Path) -> None:
    text = "user_id,purchases\n" + "".join(f"u{i},{i}\n" for i in range(1000)) + "u1000,N/A\n"
    config, written, stderr, rows = guessed_from(tmp_path, "mixed.csv", text.encode())
    assert columns(config) == [("user_id", "string"), ("purchases", "string")]
    note = 'check: purchases: long in 1000 of 1001 sampled values, but not "N/A" (line 1002): kept as string'
    assert f"# {note}" in written and note in stderr
    assert 'set `null_string: "N/A"` in the parser' in written
    assert rows[0] == ["u0", "0"]


def test_seed_settings_win(tmp_path: Path) -> None:
    text = "user_id;purchases\n" + "".join(f"u{i};{i}\n" for i in range(1000)) + "u1000;N/A\n"
    parser = '  parser:\n    delimiter: ";"\n    null_string: "N/A"\n'
    config, written, _, rows = guessed_from(tmp_path, "seeded.csv", text.encode(), parser=parser)
    parser_out = config["in"]["parser"]
    assert (parser_out["type"], parser_out["delimiter"], parser_out["null_string"]) == ("csv", ";", "N/A")
    assert columns(config) == [("user_id", "string"), ("purchases", "long")], "N/A is null: the column is long"
    assert written.count("parser:") == 1
    assert rows[0] == ["u0", 0]


def test_iso_and_slash_timestamps(tmp_path: Path) -> None:
    text = "user_id,created_at,updated_at,birthday\n" + "".join(
        f"{i},2024-01-{i % 28 + 1:02d}T10:{i % 60:02d}:00Z,2024/02/{i % 28 + 1:02d} 13:{i % 60:02d}:05,1990/05/{i % 28 + 1:02d}\n"
        for i in range(120)
    )
    config, written, _, rows = guessed_from(tmp_path, "times.csv", text.encode())
    assert config["in"]["parser"]["columns"] == [
        {"name": "user_id", "type": "long"},
        {"name": "created_at", "type": "timestamp"},
        {"name": "updated_at", "type": "timestamp", "format": "%Y/%m/%d %H:%M:%S"},
        {"name": "birthday", "type": "timestamp", "format": "%Y/%m/%d"},
    ]
    assert "# updated_at: no time zone in the values: the parser reads them as UTC" in written
    assert "created_at: no time zone" not in written
    assert rows[1] == [1, utc(2024, 1, 2, 10, 1), utc(2024, 2, 2, 13, 1, 5), utc(1990, 5, 2)]


def test_day_month_order_is_flagged(tmp_path: Path) -> None:
    text = "id,visited\n" + "".join(f"{i},{i % 12 + 1:02d}/{i % 12 + 1:02d}/2024\n" for i in range(30))
    config, written, *_ = guessed_from(tmp_path, "dates.csv", text.encode())
    assert config["in"]["parser"]["columns"][1] == {"name": "visited", "type": "timestamp", "format": "%m/%d/%Y"}
    assert "# check: visited: every value reads as %m/%d/%Y and as %d/%m/%Y too" in written


def test_json_lines(tmp_path: Path) -> None:
    lines = [
        f'{{"user_id": "u{i}", "age": {20 + i % 50}, "score": {i}.5, "vip": {str(i % 2 == 0).lower()}, '
        f'"seen_at": "2024-05-{i % 28 + 1:02d}T00:00:00+00:00", "tags": ["a", "b{i}"]'
        + (f', "coupon": "C{i}"' if i % 10 == 0 else "") + "}"
        for i in range(200)
    ]
    config, written, _, rows = guessed_from(tmp_path, "events.jsonl", ("\n".join(lines) + "\n").encode(), out=KAFKA_OUT)
    assert config["in"]["parser"]["type"] == "jsonl"
    assert columns(config) == [
        ("user_id", "string"), ("age", "long"), ("score", "double"), ("vip", "boolean"), ("seen_at", "timestamp"),
        ("tags", "json"), ("coupon", "string"),
    ]
    assert config["out"]["key_column_name"] == "user_id"
    assert "# coupon: in 20 of 200 sampled records (null where it is missing)" in written
    assert rows[1] == ["u1", 21, 1.5, False, utc(2024, 5, 2), ["a", "b1"], None]


@pytest.mark.parametrize(("name", "compress", "decoder"), [
    ("a.csv.gz", gzip.compress, "gzip"),
    ("a.csv.zst", zstandard.ZstdCompressor().compress, "zstd"),
])
def test_gzip_and_zstd(tmp_path: Path, name: str, compress, decoder: str) -> None:
    text = "user_id,score\n" + "".join(f"u{i},{i}\n" for i in range(500))
    config, written, _, rows = guessed_from(tmp_path, name, compress(text.encode()))
    assert config["in"]["decoders"] == [{"type": decoder}]
    assert f"{decoder}, UTF-8, CSV (comma-separated), with a header line" in written
    assert columns(config) == [("user_id", "string"), ("score", "long")]
    assert rows[:2] == [["u0", 0], ["u1", 1]]


def test_plain_bytes_leave_decoders_to_detection(tmp_path: Path) -> None:
    config, written, *_ = guessed_from(tmp_path, "a.csv", b"user_id\nu1\nu2\n")
    assert "decoders" not in config["in"]
    assert "# decoders: none: the data is not compressed" in written
    assert "# check: one column: no delimiter" in written


def test_sample_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large gzip object: only the first --sample-bytes (decompressed) are read, not the object."""
    from pipelines.plugins import file_input

    blob = random.Random(7).randbytes(3_000_000).hex()
    text = "user_id,score\n" + "".join(f"{blob[j:j + 16]},{j}\n" for j in range(0, len(blob), 16))
    path = drop(tmp_path, "big.csv.gz", gzip.compress(text.encode(), 1))  # about 4.5 MB
    read: list[int] = []
    opened = file_input.FileInput.open

    def counting_open(self, source, offset=0):
        stream = opened(self, source, offset)
        raw_read = stream.read
        stream_read = lambda size=-1: read.append(len(data := raw_read(size))) or data  # noqa: E731
        return type("Counted", (), {"read": staticmethod(stream_read), "close": stream.close})()

    monkeypatch.setattr(file_input.FileInput, "open", counting_open)
    config, written, _ = guess(file_seed(tmp_path, path), "--sample-bytes", "65536", "--rows", "0")
    assert "guessed from the first 64.0 KiB (decompressed) of" in written
    assert path.stat().st_size > 4_000_000
    assert sum(read) <= 1 << 20, "the object was read far past the sample (the gzip reader reads 512 KiB at a time)"
    assert columns(config) == [("user_id", "string"), ("score", "long")]


def test_template_seed_kept_with_kafka_key(tmp_path: Path) -> None:
    (tmp_path / "_kafka.yml.liquid").write_text((REPO / "configs" / "_kafka.yml.liquid").read_text())
    path = drop(tmp_path, "aud.csv", ("customer_id,user_id,score\n" + "".join(f"c{i},u{i},{i}\n" for i in range(50))).encode())
    seed = tmp_path / "seed.yml.liquid"
    seed.write_text(textwrap.dedent("""\
        # Import a customer's drop
        in:
          type: file
          path_prefix: "{{ env.DROP }}"
        {%- if env.PATTERN %}
          path_match_pattern: "{{ env.PATTERN }}"
        {%- endif %}
        out:
        {% include 'kafka' %}
          topic: "{{ env.KAFKA_TOPIC | default: 'audience-members' }}"
        exec:
          max_errors: 10
        """))
    env = ("--var", f"DROP={path}", "--var", "KAFKA_BOOTSTRAP=127.0.0.1:9092", "--var", "PATTERN=")
    config_path = tmp_path / "audience.yml.liquid"
    _, text, _ = guess(seed, *env, output=config_path)
    assert text.startswith("# Import a customer's drop\nin:\n  type: file\n  path_prefix: \"{{ env.DROP }}\"\n{%- if env.PATTERN %}")
    assert "{% include 'kafka' %}" in text and "{{ env.KAFKA_TOPIC | default: 'audience-members' }}" in text
    assert "# check: key_column_name: user_id looks like a user id, but customer_id could be one too" in text
    assert "  key_column_name: user_id\nexec:\n  max_errors: 10\n" in text
    rows = read_back(config_path, *env)
    assert rows[0] == ["c0", "u0", 0]
    job = load_job(config_path, variables(env))
    assert job.output.settings.key_column_name == "user_id"


def test_template_seed_written_as_plain_yaml_is_rendered(tmp_path: Path) -> None:
    path = drop(tmp_path, "aud.csv", b"user_id,score\nu1,1\nu2,2\n")
    seed = tmp_path / "seed.yml.liquid"
    seed.write_text('in:\n  type: file\n  path_prefix: "{{ env.DROP }}"\nout:\n  type: stdout\n')
    result = invoke("guess", seed, "-o", tmp_path / "plain.yml", "--var", f"DROP={path}")
    assert result.exit_code == 0, result.stderr
    text = (tmp_path / "plain.yml").read_text()
    assert text.startswith("# the seed's template is not kept (plain.yml is not a *.liquid template)")
    assert f"path_prefix: {path}" in text
    assert "note: written as rendered" in result.stderr
    assert read_back(tmp_path / "plain.yml")[0] == ["u1", 1]


def test_a_rendered_seed_never_writes_its_secrets(tmp_path: Path) -> None:
    """Written as rendered, a seed whose template puts a secret in (a --var password) would hold it in
    clear: refused, and the secret is in no output."""
    path = drop(tmp_path, "aud.csv", b"user_id,score\nu1,1\nu2,2\n")
    seed = tmp_path / "seed.yml.liquid"
    seed.write_text('in:\n  type: file\n  path_prefix: "{{ env.DROP }}"\nout:\n  type: stdout\n'
                    'exec:\n  note: {password: "{{ env.DB_PASSWORD }}"}\n')
    result = invoke("guess", seed, "-o", tmp_path / "plain.yml", "--var", f"DROP={path}", "--var", "DB_PASSWORD=hunter2-secret")
    assert result.exit_code != 0
    assert "would hold the seed's secrets in clear" in result.stderr
    assert "hunter2-secret" not in result.stderr + result.stdout
    assert not (tmp_path / "plain.yml").exists()


def test_printed_without_output(tmp_path: Path) -> None:
    path = drop(tmp_path, "aud.csv", b"user_id,score\nu1,1\nu2,2\n")
    result = invoke("guess", file_seed(tmp_path, path))
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load(result.stdout)["in"]["parser"]["columns"] == [{"name": "user_id", "type": "string"}, {"name": "score", "type": "long"}]
    assert "| user_id:string | score:long |" in result.stderr


def test_s3_object_on_moto(tmp_path: Path, s3, bucket: str) -> None:
    text = "user_id,country,score,updated_at\n" + "".join(f"u{i},JP,{i}.5,2024/06/{i % 28 + 1:02d} 12:00:00\n" for i in range(3000))
    s3.put_object(Bucket=bucket, Key="drops/2024-06-01/part-0.csv.gz", Body=gzip.compress(text.encode()))
    s3.put_object(Bucket=bucket, Key="drops/2024-06-01/part-1.csv.gz", Body=gzip.compress(b"not,the,first\n"))
    (tmp_path / "_kafka.yml.liquid").write_text((REPO / "configs" / "_kafka.yml.liquid").read_text())
    seed = tmp_path / "seed.yml.liquid"
    seed.write_text('in:\n  type: s3\n  bucket: "{{ env.S3_BUCKET }}"\n  path_prefix: "{{ env.S3_KEY }}"\nout:\n'
                    "{% include 'kafka' %}\n  topic: audience-members\n")
    env = ("--var", f"S3_BUCKET={bucket}", "--var", "S3_KEY=drops/2024-06-01/")
    config, text, _ = guess(seed, *env, output=tmp_path / "s3.yml.liquid")
    assert f"guessed from all of s3://{bucket}/drops/2024-06-01/part-0.csv.gz" in text
    assert config["in"]["decoders"] == [{"type": "gzip"}]
    job = load_job(tmp_path / "s3.yml.liquid", variables(env))
    assert [(c.name, c.type) for c in job.schema.columns] == [
        ("user_id", "string"), ("country", "string"), ("score", "double"), ("updated_at", "timestamp")
    ]
    assert job.output.settings.key_column_name == "user_id"
    assert read_back(tmp_path / "s3.yml.liquid", *env, rows=2) == [
        ["u0", "JP", 0.5, utc(2024, 6, 1, 12)], ["u1", "JP", 1.5, utc(2024, 6, 2, 12)]
    ]


# ---------------------------------------------------------------- errors


def error_of(seed: Path, exit_code: int, *args: str) -> str:
    result = invoke("guess", seed, *args)
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def test_seed_without_out(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yml"
    seed.write_text("in:\n  type: file\n  path_prefix: /nowhere/x\n")
    assert "out: missing required section 'out:'" in error_of(seed, EXIT_CONFIG)


def test_seed_without_in(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yml"
    seed.write_text(STDOUT_OUT)
    assert "in: missing required section 'in:'" in error_of(seed, EXIT_CONFIG)


def test_no_object_found(tmp_path: Path) -> None:
    (tmp_path / "drops").mkdir()
    assert "no file matches" in error_of(file_seed(tmp_path, tmp_path / "drops" / "none_"), EXIT_RUN_FAILED)


def test_empty_sample(tmp_path: Path) -> None:
    path = drop(tmp_path, "empty.csv.gz", gzip.compress(b""))
    assert "the sample is empty: the object decompresses to nothing" in error_of(file_seed(tmp_path, path), EXIT_RUN_FAILED)
    path = drop(tmp_path, "zero.csv", b"")
    assert "the file is empty (0 bytes)" in error_of(file_seed(tmp_path, path), EXIT_RUN_FAILED)


def test_binary_and_undecodable_data(tmp_path: Path) -> None:
    path = drop(tmp_path, "a.bin", bytes(range(256)) * 10)
    assert "binary data (a NUL byte at byte 1 of the sample)" in error_of(file_seed(tmp_path, path), EXIT_RUN_FAILED)
    path = drop(tmp_path, "b.avro", b"Obj\x01" + b"x" * 100)
    assert "an Avro container file" in error_of(file_seed(tmp_path, path), EXIT_RUN_FAILED)
    path = drop(tmp_path, "c.csv", b"id,name\n" + b"1,\xff\xfe\xfd\x80\n" * 50)
    assert "not text in UTF-8, Shift_JIS/CP932 or EUC-JP" in error_of(file_seed(tmp_path, path), EXIT_RUN_FAILED)


# ---------------------------------------------------------------- the command


def test_help_has_an_example() -> None:
    assert "guess" in invoke("--help").stdout
    result = invoke("guess", "--help")
    assert result.exit_code == 0
    assert "pipelines guess seed.yml.liquid -o audience.yml.liquid" in result.stdout


def test_cli_start_does_not_import_the_guessing() -> None:
    code = "import sys, pipelines.cli.main; print(sorted(m for m in sys.modules if m.startswith(('pipelines.guess', 'charset_normalizer'))))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout == "[]\n"
