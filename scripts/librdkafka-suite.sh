#!/usr/bin/env bash
# librdkafka's own regression suite (the C/C++ tests in librdkafka's tests/), unmodified, against
# a Porter it starts:
#
#   scripts/librdkafka-suite.sh                 # every test that applies to Porter
#   scripts/librdkafka-suite.sh 0030,0082       # just these (test numbers, comma-separated)
#   scripts/librdkafka-suite.sh --quick         # the quick subset the pytest suite runs
#   scripts/librdkafka-suite.sh --build-only    # install, download and build; run nothing
#   scripts/librdkafka-suite.sh --list          # what would run, and what is not applicable
#
# Steps (each one checks first, so a warm rerun downloads and builds nothing):
#   1. deps   gcc/g++/make, pkg-config, python3, zlib1g-dev, libzstd-dev, libssl-dev and
#             rapidjson-dev (0053 and 0110 check the statistics JSON with it) from apt, only if
#             missing (npm must be there already: it is the download tool)
#   2. fetch  librdkafka's source tree, tests/ included, comes from the npm package
#             @confluentinc/kafka-javascript (it bundles librdkafka under deps/librdkafka): the
#             version is pinned below and the tarball is checked against the registry's sha512
#             integrity before it is unpacked. GitHub is not needed.
#   3. build  ./configure with no downloads (builtin lz4, no GSSAPI, no libcurl), make libs, then
#             tests/test-runner (make -C tests build)
#   4. run    tests/librdkafka/run.py: starts `porter serve` (fresh data dir, Kafka on a free
#             loopback port, AMQP off, auto-created topics with 4 partitions, like librdkafka's
#             "default" test scenario), runs each test number in its own test-runner process,
#             then prints a table and "librdkafka suite: N passed, M failed, K not applicable".
#             Exit status 1 if any applicable test failed.
#
# What is not run, and why, is tests/librdkafka/not-applicable.txt (one test per line, with the
# reason). Tests run in full (test-runner without -Q): librdkafka's quick mode (-Q, its `make quick`)
# skips every sub-test not marked quick, so many tests would pass having tested little;
# --runner-quick asks for it anyway (a smoke run).
#
# Everything downloaded, built and every run's logs live under $LIBRDKAFKA_SUITE_DIR (default
# target/librdkafka-suite, ignored by git): src/ (the unpacked tree and its build), runs/<time>/
# (per-test logs, the Porter log, results.tsv), runs/latest.
#
# Knobs: PORTER_BIN (default target/debug/porter), LIBRDKAFKA_SUITE_DIR,
# LIBRDKAFKA_SUITE_TEST_TIMEOUT_S (per test number, default 1200: 0113 alone takes 8 minutes),
# LIBRDKAFKA_SUITE_PYTHON (a Python with confluent-kafka for the kafka-topics.sh stand-in; default
# .venv/bin/python, which scripts/test.sh builds). The knobs are deliberately not PORTER_* names:
# `porter serve` reads PORTER_* variables as settings (and warns about unknown ones), and the
# broker is started with no PORTER_* variable at all.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The librdkafka that confluent's kafka-javascript 1.10.1 bundles. To move to a newer librdkafka,
# change all three (the integrity: `npm view PACKAGE@VERSION dist.integrity`) and re-check
# tests/librdkafka/not-applicable.txt against the new tests/test.c.
NPM_PACKAGE="@confluentinc/kafka-javascript"
NPM_VERSION="1.10.1"
NPM_INTEGRITY="sha512-KVePUBn21EqCVP9mfxzEuM3SYJHHEF7X+iiC2e43QQgDSyEaksInmCGooT3w5q+cNAdkSCrK71j0ICfqoSqZLw=="
LIBRDKAFKA_VERSION="2.15.1"
# Deliberately minimal: nothing configure would download, and only what the tests against a
# plaintext broker use. zstd is kept (0017-compression tests every codec).
CONFIGURE_ARGS=(--no-download --disable-gssapi --disable-curl --disable-lz4-ext)
# Debian packages the build uses; configure enables what it finds, so they are part of the build
# stamp: installing one later rebuilds.
BUILD_PACKAGES=(zlib1g-dev libzstd-dev libssl-dev rapidjson-dev)

# The quick subset (tests/python/test_librdkafka_suite.py runs it with --quick): fast tests of the
# basics that pass today, about 45 s of tests: keyless records refused on a compacted topic (0011),
# produce and consume (0012), consumer groups and ListGroups (0019), assign at offsets (0029),
# pipelined async offset commits (0030), ListOffsets (0031), cluster id in Metadata (0063), headers
# (0073), fetch.max.bytes (0082), the idempotent producer (0090), committed offsets with metadata
# (0099).
QUICK_TESTS="0011,0012,0019,0029,0030,0031,0063,0073,0082,0090,0099"

SUITE_DIR="${LIBRDKAFKA_SUITE_DIR:-$ROOT/target/librdkafka-suite}"
PORTER_BIN="${PORTER_BIN:-$ROOT/target/debug/porter}"
DOWNLOAD_DIR="$SUITE_DIR/download"
TARBALL="$DOWNLOAD_DIR/confluentinc-kafka-javascript-$NPM_VERSION.tgz"
SRC_DIR="$SUITE_DIR/src/librdkafka-$LIBRDKAFKA_VERSION"
BUILD_STAMP="$SRC_DIR/.porter-build"

log() { printf '[librdkafka-suite] %s\n' "$*" >&2; }
die() { log "$*"; exit 2; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# as_root, shared with the peer scripts (they too define `log` first).
# shellcheck source=scripts/peers/common.sh
source "$ROOT/scripts/peers/common.sh"

package_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'
}

install_deps() {
    local apt_packages=() package
    command -v gcc >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1 &&
        command -v make >/dev/null 2>&1 || apt_packages+=(build-essential)
    command -v pkg-config >/dev/null 2>&1 || apt_packages+=(pkg-config)
    command -v python3 >/dev/null 2>&1 || apt_packages+=(python3)
    for package in "${BUILD_PACKAGES[@]}"; do
        package_installed "$package" || apt_packages+=("$package")
    done
    if [[ ${#apt_packages[@]} -gt 0 ]]; then
        command -v apt-get >/dev/null 2>&1 ||
            die "missing ${apt_packages[*]} and no apt-get here: install them (or their equivalents)"
        log "apt: installing ${apt_packages[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${apt_packages[@]}" >/dev/null
    else
        log "apt: build tools and ${BUILD_PACKAGES[*]} already present"
    fi
    command -v npm >/dev/null 2>&1 || die "npm not found: it downloads librdkafka's sources (install Node.js with npm)"
}

# integrity_of FILE: the npm-style "sha512-<base64 of the digest>" of FILE.
integrity_of() {
    python3 -c 'import base64, hashlib, sys
print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$1"
}

fetch_sources() {
    if [[ -f "$SRC_DIR/.porter-unpacked" ]]; then
        log "sources: librdkafka $LIBRDKAFKA_VERSION already unpacked in ${SRC_DIR#"$ROOT"/}"
        return 0
    fi
    mkdir -p "$DOWNLOAD_DIR"
    if [[ ! -f "$TARBALL" || "$(integrity_of "$TARBALL")" != "$NPM_INTEGRITY" ]]; then
        rm -f "$TARBALL"
        log "fetch: npm pack $NPM_PACKAGE@$NPM_VERSION (bundles librdkafka $LIBRDKAFKA_VERSION)"
        (cd "$DOWNLOAD_DIR" && npm pack "$NPM_PACKAGE@$NPM_VERSION" --ignore-scripts --silent \
            --pack-destination "$DOWNLOAD_DIR" >/dev/null)
        [[ -f "$TARBALL" ]] || die "npm pack did not produce $TARBALL"
    fi
    local got
    got="$(integrity_of "$TARBALL")"
    if [[ "$got" != "$NPM_INTEGRITY" ]]; then
        rm -f "$TARBALL"
        die "integrity mismatch for $NPM_PACKAGE@$NPM_VERSION: expected $NPM_INTEGRITY, got $got (removed)"
    fi
    log "fetch: integrity ok ($NPM_INTEGRITY)"
    local staging="$SUITE_DIR/src/.unpack.$$"
    rm -rf "$staging" "$SRC_DIR"
    mkdir -p "$staging"
    tar -xzf "$TARBALL" -C "$staging" package/deps/librdkafka
    local version
    version="$(sed -nE 's/^#define RD_KAFKA_VERSION +0x([0-9a-f]+).*/\1/p' \
        "$staging/package/deps/librdkafka/src/rdkafka.h")"
    [[ -n "$version" ]] || die "no RD_KAFKA_VERSION in the unpacked src/rdkafka.h"
    mv "$staging/package/deps/librdkafka" "$SRC_DIR"
    rm -rf "$staging"
    touch "$SRC_DIR/.porter-unpacked"
    log "fetch: unpacked librdkafka (RD_KAFKA_VERSION 0x$version) into ${SRC_DIR#"$ROOT"/}"
}

build() {
    local wanted
    local package present=()
    for package in "${BUILD_PACKAGES[@]}"; do
        package_installed "$package" && present+=("$package")
    done
    wanted="librdkafka $LIBRDKAFKA_VERSION; configure ${CONFIGURE_ARGS[*]}; $(cc --version | head -n 1); ${present[*]}"
    if [[ -x "$SRC_DIR/tests/test-runner" && -f "$BUILD_STAMP" && "$(cat "$BUILD_STAMP")" == "$wanted" ]]; then
        log "build: tests/test-runner up to date"
        return 0
    fi
    rm -f "$BUILD_STAMP"
    local jobs build_log="$SUITE_DIR/build.log" started=$SECONDS
    jobs="$(nproc 2>/dev/null || echo 2)"
    ((jobs > 2)) && jobs=2
    log "build: configure, make libs, make -C tests build (-j$jobs; log: ${build_log#"$ROOT"/})"
    # GIT_CEILING_DIRECTORIES: configure's gitversion would otherwise describe Porter's repository.
    if ! (
        cd "$SRC_DIR" &&
            export GIT_CEILING_DIRECTORIES="$SUITE_DIR" &&
            ./configure "${CONFIGURE_ARGS[@]}" &&
            make -j"$jobs" libs &&
            make -j"$jobs" -C tests build
    ) >"$build_log" 2>&1; then
        tail -n 40 "$build_log" >&2
        die "build failed; full log: $build_log"
    fi
    [[ -x "$SRC_DIR/tests/test-runner" ]] || die "build finished without tests/test-runner"
    echo "$wanted" >"$BUILD_STAMP"
    log "build: done in $((SECONDS - started))s"
}

MODE=all
TESTS_ARG=""
RUN_ARGS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --quick) MODE=quick ;;
        --build-only) MODE=build ;;
        --list) MODE=list ;;
        --runner-quick) RUN_ARGS+=(--runner-quick) ;;
        -*) usage >&2; die "unknown option $1" ;;
        *) [[ -z "$TESTS_ARG" ]] || die "give the tests as one comma-separated list"; TESTS_ARG="$1" ;;
    esac
    shift
done
if [[ $MODE == quick ]]; then
    [[ -z "$TESTS_ARG" ]] || die "--quick runs its own list; give either --quick or tests"
    TESTS_ARG="$QUICK_TESTS"
fi

# lock_build / unlock_build: one download and build at a time in $SUITE_DIR (runs may overlap).
lock_build() {
    mkdir -p "$SUITE_DIR"
    command -v flock >/dev/null 2>&1 || return 0
    exec 9>"$SUITE_DIR/.build.lock"
    flock 9
}
unlock_build() {
    command -v flock >/dev/null 2>&1 || return 0
    exec 9>&-
}

SHIM_PYTHON="${LIBRDKAFKA_SUITE_PYTHON:-$ROOT/.venv/bin/python}"
if [[ $MODE == list ]]; then
    # The plan needs only tests/test.c: no build, no broker.
    command -v npm >/dev/null 2>&1 || die "npm not found: it downloads librdkafka's sources"
    lock_build
    fetch_sources
    unlock_build
    RUN_ARGS+=(--list)
else
    install_deps
    lock_build
    fetch_sources
    build
    unlock_build
    [[ $MODE == build ]] && exit 0
    [[ -x "$PORTER_BIN" ]] || die "porter binary not found at $PORTER_BIN (cargo build, or set PORTER_BIN)"
    "$SHIM_PYTHON" -c 'import confluent_kafka' 2>/dev/null ||
        die "$SHIM_PYTHON can't import confluent_kafka (needed by the kafka-topics.sh stand-in): run scripts/test.sh once, or set LIBRDKAFKA_SUITE_PYTHON"
fi

exec python3 "$ROOT/tests/librdkafka/run.py" \
    --porter "$PORTER_BIN" \
    --librdkafka "$SRC_DIR" \
    --librdkafka-version "$LIBRDKAFKA_VERSION" \
    --suite-dir "$SUITE_DIR" \
    --not-applicable "$ROOT/tests/librdkafka/not-applicable.txt" \
    --shim-python "$SHIM_PYTHON" \
    --timeout "${LIBRDKAFKA_SUITE_TEST_TIMEOUT_S:-1200}" \
    ${TESTS_ARG:+--tests "$TESTS_ARG"} \
    "${RUN_ARGS[@]}"
