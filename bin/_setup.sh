# Shared by bin/haltlab and bin/test: make .venv ready, idempotently and quickly.
# Sourced, not run. Installs only what is missing; the stamp file makes the
# second and later calls cost a hash and a stat.

haltlab_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
haltlab_venv="$haltlab_root/.venv"

haltlab_log() { printf 'haltlab-setup: %s\n' "$*" >&2; }

haltlab_pick_python() {
    for py in python3.13 python3.12 python3.11 python3; do
        if command -v "$py" >/dev/null 2>&1 &&
           "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$py"; return 0
        fi
    done
    haltlab_log "needs Python 3.11 or newer on PATH"; return 1
}

haltlab_foreign_arch() {
    # Adds a dpkg architecture (and updates apt's lists once) when running as
    # root and it is missing: the arm64 lab apt-get downloads Debian's arm64
    # kernel, busybox and kexec-tools into its cache (lab/images.py,
    # lab/userland.py), never installs them, but apt lists them only then.
    dpkg --print-foreign-architectures 2>/dev/null | grep -qx "$1" && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        haltlab_log "not root: cannot add the $1 architecture (lab kexec --arch $1 needs it)"; return 0
    fi
    haltlab_log "dpkg --add-architecture $1; apt-get update"
    dpkg --add-architecture "$1" && { apt-get update -q >/dev/null 2>&1 || true; }
}

haltlab_apt() {
    # Installs Debian packages when running as root and they are missing.
    # Not root: says what is missing and goes on (the lab then reports itself
    # unavailable instead of failing). With the lab's packages, also the
    # architectures their guests need (haltlab_lab_arches).
    local missing=() arch
    if [[ " $* " == *" qemu-system-arm "* ]]; then
        for arch in "${haltlab_lab_arches[@]}"; do haltlab_foreign_arch "$arch"; done
    fi
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        haltlab_log "not root: cannot install ${missing[*]}"; return 0
    fi
    haltlab_log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        apt-get update -q >/dev/null 2>&1 || true
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

haltlab_setup() {
    local extras="$1" py stamp want
    py=$(haltlab_pick_python) || return 1
    stamp="$haltlab_venv/.haltlab-installed"
    # A first run interrupted after `venv` made bin/python but before pip was in
    # place leaves a venv that can never install. Until the stamp says an install
    # worked, pip must run in it, or the venv is made again.
    if [ -e "$haltlab_venv" ] && [ ! -f "$stamp" ] &&
       ! "$haltlab_venv/bin/python" -m pip --version >/dev/null 2>&1; then
        haltlab_log "$haltlab_venv has no working pip: making it again"
        rm -rf "$haltlab_venv"
    fi
    if [ ! -x "$haltlab_venv/bin/python" ]; then
        haltlab_log "creating $haltlab_venv"
        if ! "$py" -m venv "$haltlab_venv" 2>/dev/null; then
            rm -rf "$haltlab_venv"
            haltlab_apt python3-venv
            "$py" -m venv "$haltlab_venv"
        fi
    fi
    want="$(cat "$haltlab_root/pyproject.toml" | sha256sum | cut -c1-16) $extras"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        haltlab_log "pip install -e .[$extras]"
        "$haltlab_venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
        "$haltlab_venv/bin/python" -m pip install -q --disable-pip-version-check -e "$haltlab_root[$extras]"
        echo "$want" > "$stamp"
    fi
}

# What the lab needs from Debian: QEMU, a static busybox for the initramfs,
# kexec-tools for the kexec experiment, and cpio, with which the tests read the
# initramfs back (haltlab writes the archive itself, in initramfs.py).
haltlab_lab_packages=(qemu-system-x86 busybox-static kexec-tools cpio)
# The arm64 guest (`lab kexec --arch arm64`): QEMU's aarch64 system emulator,
# and binutils' readelf, with which lab/userland.py reads which libraries the
# arm64 kexec-tools needs (ldd cannot run it). Its kernel, busybox and
# kexec-tools are arm64 packages the lab downloads itself: apt must know the
# architecture (haltlab_foreign_arch).
haltlab_lab_packages+=(qemu-system-arm binutils)
haltlab_lab_arches=(arm64)
# And what `haltlab lab build` needs to build a kernel from Debian's source
# (lab/build.py): the toolchain and the kernel build's own tools (flex, bison,
# bc, libelf, OpenSSL headers), ccache, and the source itself, which
# linux-source-6.1 puts in /usr/src/linux-source-6.1.tar.xz.
haltlab_lab_packages+=(build-essential flex bison bc libelf-dev libssl-dev ccache linux-source-6.1)

# What the tests need beyond the lab: Debian's chromium, in which
# tests/report/test_report_browser.py loads report.html headless, and spin and
# gcc, with which tests/checks/test_spin_peer.py verifies the SPIN peer of the
# panic race (benchmarks/peers/). Only bin/test installs these; bin/haltlab
# needs neither a browser nor a model checker. libc6-dev by name: gcc only
# recommends it, and packages here are installed without recommends, so a fresh
# machine would get a compiler that cannot build pan.c (no <stdio.h>).
haltlab_test_packages=(chromium spin gcc libc6-dev)
