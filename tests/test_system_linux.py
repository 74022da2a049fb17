"""Full-system mode boots Debian's stock kernel (docs/system.md): the setup fetches the kernel
package and busybox-static with the ordinary package client (apt-get download; cached under
build/system/, never committed), writes an initramfs whose /init is a busybox script, boots
it with `uintr-emu system` and checks what the script printed. Skipped only where no package
registry is reachable."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from uintr_emu.system.initramfs import busybox_initramfs

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE = REPO_ROOT / "build" / "system"
SCRIPT = """/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
uname -r; nproc; grep -c processor /proc/cpuinfo; cat /proc/interrupts; echo SYSTEM-OK; poweroff -f
"""
BOOT_TIMEOUT = 900  # host seconds: ~60 s alone on 2 cores, several times that under load


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=CACHE, capture_output=True, text=True, timeout=600)


def _fetch(package: str, wanted: str) -> Path:
    """The files of `package`'s .deb under its directory `wanted` (e.g. "./boot/"),
    extracted into build/system/PACKAGE/ (downloaded and extracted once)."""
    tree = CACHE / package
    if tree.is_dir():
        return tree
    debs = sorted(CACHE.glob(f"{package}_*.deb"))
    if not debs:
        r = _apt("apt-get", "download", package)
        debs = sorted(CACHE.glob(f"{package}_*.deb"))
        if r.returncode != 0 or not debs:
            last = (r.stderr.strip().splitlines() or ["no output"])[-1]
            pytest.skip(f"no package registry reachable for 'apt-get download {package}': {last}")
    partial = CACHE / f"{package}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    deb = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(debs[-1])], stdout=subprocess.PIPE)
    with deb, tarfile.open(fileobj=deb.stdout, mode="r|") as tar:
        for member in tar:
            if member.name.startswith(wanted) and member.isfile():
                tar.extract(member, partial, filter="data")
    assert deb.returncode == 0, f"dpkg-deb --fsys-tarfile {debs[-1]} failed"
    partial.rename(tree)
    return tree


@pytest.fixture(scope="module")
def debian() -> tuple[Path, Path]:
    """(vmlinuz, initramfs) from Debian's linux-image-*-amd64 and busybox-static."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("no package client (apt-get, dpkg-deb) on this host")
    CACHE.mkdir(parents=True, exist_ok=True)
    r = _apt("apt-cache", "depends", "linux-image-amd64")
    m = re.search(r"Depends: (linux-image-\S+-amd64)", r.stdout)
    if m is None:
        pytest.skip("the package index knows no linux-image-amd64 (run apt-get update)")
    kernel_tree = _fetch(m.group(1), "./boot/")  # not the 400 MB of modules
    busybox = _fetch("busybox-static", "./bin/") / "bin" / "busybox"
    (vmlinuz,) = (kernel_tree / "boot").glob("vmlinuz-*")
    initrd = CACHE / "busybox-initramfs.cpio"
    initrd.write_bytes(busybox_initramfs(busybox.read_bytes(), SCRIPT))
    return vmlinuz, initrd


@pytest.mark.slow
def test_debian_kernel_boots_runs_the_busybox_script_and_halts(debian: tuple[Path, Path]) -> None:
    vmlinuz, initrd = debian
    release = vmlinuz.name.removeprefix("vmlinuz-")
    cmd = [sys.executable, "-m", "uintr_emu", "system", "--kernel", str(vmlinuz),
           "--initrd", str(initrd), "--append", "console=ttyS0", "--stats",
           "--timeout", str(BOOT_TIMEOUT)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, timeout=BOOT_TIMEOUT + 60)
    out = r.stdout.decode(errors="replace").replace("\r\n", "\n")  # the tty adds CRs
    tail = out[-3000:] + r.stderr.decode(errors="replace")
    assert r.returncode == 0, tail
    after_init = out[out.index("Run /init as init process") :]
    lines = after_init.splitlines()
    assert release in lines, tail  # uname -r
    start = lines.index(release)
    assert lines[start + 1 : start + 3] == ["1", "1"], tail  # nproc, processors in cpuinfo
    counts = {m.group(2): int(m.group(1)) for m in re.finditer(r"^\s*\d+:\s+(\d+)\s+\S+\s+(\S+)$",
                                                               after_init, re.M)}  # fmt: skip
    assert counts.get("timer", 0) > 0 and counts.get("ttyS0", 0) > 0, tail
    assert "SYSTEM-OK" in lines and "reboot: System halted" in after_init, tail


@pytest.mark.slow
def test_two_boots_print_the_same_console_output(debian: tuple[Path, Path]) -> None:
    """Virtual time only (docs/system.md, "Time"): the same kernel, initrd and command line
    give the same console, timestamps included, up to the same --max-insns."""
    vmlinuz, initrd = debian
    cmd = [sys.executable, "-m", "uintr_emu", "system", "--kernel", str(vmlinuz),
           "--initrd", str(initrd), "--max-insns", "150000000"]  # fmt: skip
    runs = [subprocess.run(cmd, capture_output=True, timeout=BOOT_TIMEOUT) for _ in range(2)]
    assert [r.returncode for r in runs] == [124, 124], runs[0].stderr
    assert b"Linux version" in runs[0].stdout and runs[0].stdout.count(b"\n") > 50
    assert runs[0].stdout == runs[1].stdout
