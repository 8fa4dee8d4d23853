"""kcat (Debian's, librdkafka 2.0) as a second, independent client: keys, headers, compression,
metadata listing. Topics here are auto-created by the first produce."""

from __future__ import annotations

import shutil
import subprocess

import pytest

KCAT_S_MAX = 60
HEADERS = ["h1=v1", "trace=abc-123"]


def kcat(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    binary = shutil.which("kcat")
    assert binary, "kcat not on PATH: ./scripts/test.sh installs it (apt-get install kcat)"
    result = subprocess.run(
        [binary, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=KCAT_S_MAX,
    )
    assert result.returncode == 0, (
        f"kcat {' '.join(args)} exited {result.returncode}\nstdout:\n{result.stdout[-2000:]}\n"
        f"stderr:\n{result.stderr[-4000:]}"
    )
    return result


def produce_lines(bootstrap: str, topic: str, lines: list[str], *extra: str) -> None:
    header_args = [arg for header in HEADERS for arg in ("-H", header)]
    kcat("-P", "-b", bootstrap, "-t", topic, "-K:", *header_args, *extra, stdin="".join(f"{line}\n" for line in lines))


def consume_formatted(bootstrap: str, topic: str) -> list[str]:
    result = kcat("-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k %s %h %o\\n")
    return result.stdout.splitlines()


def expected_lines(count: int) -> list[str]:
    return [f"key-{i} value-{i} {','.join(HEADERS)} {i}" for i in range(count)]


def test_kcat_keys_and_headers_round_trip(porter):
    topic = "kcat-roundtrip"
    produce_lines(porter.bootstrap, topic, [f"key-{i}:value-{i}" for i in range(500)])
    assert consume_formatted(porter.bootstrap, topic) == expected_lines(500)


def test_kcat_metadata_lists_topic(porter):
    topic = "kcat-listed"
    produce_lines(porter.bootstrap, topic, ["k:v"])

    listed = kcat("-L", "-b", porter.bootstrap, "-t", topic).stdout
    assert f'topic "{topic}" with 1 partitions:' in listed, listed
    assert porter.bootstrap in listed, f"advertised address missing:\n{listed}"

    everything = kcat("-L", "-b", porter.bootstrap).stdout
    assert f'topic "{topic}" with 1 partitions:' in everything, everything


@pytest.mark.parametrize(
    "codec_args",
    [
        ("-z", "snappy"),
        ("-z", "gzip"),
        ("-z", "lz4"),
        ("-X", "compression.codec=zstd"),
    ],
    ids=["snappy", "gzip", "lz4", "zstd"],
)
def test_kcat_compressed_round_trip(porter, codec_args):
    topic = f"kcat-{codec_args[-1].split('=')[-1]}"
    # Many records per batch, so the codec really has a batch to compress.
    produce_lines(
        porter.bootstrap,
        topic,
        [f"key-{i}:value-{i}" for i in range(2000)],
        *codec_args,
        "-X",
        "linger.ms=50",
    )
    assert consume_formatted(porter.bootstrap, topic) == expected_lines(2000)
