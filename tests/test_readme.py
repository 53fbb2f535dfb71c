"""Every snippet of README.md runs as written, in order, in one scratch directory.

Python blocks run as scripts; `$ ` lines of the other blocks run in a shell with the
environment's `wirecap` on PATH (`sudo ` dropped: the suite runs as root). What is not run,
and why, is listed below: the README's first block (`make demo`, `make test`: this suite is
`make test`; tools/fresh-machine runs both on a fresh Debian) and host preparation that changes
the machine (binding NICs, reserving hugepages, installing boot files); a README command in
neither list fails the test until it is classified.
"""
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time

import pytest

from wirecap.afpacket import veth
from wirecap.dump import PcapWriter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
BIN = os.path.dirname(sys.executable)
TIMEOUT = 600

# commands shown but never run here: they change the host (or reboot it), or are make itself
NOT_RUN = {
    "make demo", "make test",
    "sudo wirecap setup --persist",
    'sudo usermod -aG wirecap "$USER"',
    "sudoedit /etc/default/grub && sudo update-grub && sudo reboot",
    "sudo wirecap bind enp3s0f0",
    "sudo wirecap bind 0000:03:00.0 0000:03:00.1",
    "sudo wirecap restore",
    "sudo wirecap hugepages --reserve 512 --node 0",
}
# transcripts from a host with 82599 ports: run for what they are here (a clear line, no
# traceback), not for the output shown
HOST_READS = {"wirecap doctor", "wirecap devices", "wirecap hugepages",
              "sudo wirecap bind --dry-run 0000:03:00.0 0000:03:00.1"}
ANOTHER_TERMINAL = "in another terminal"
AF_PACKET_IFACE = "eth0"


def snippets():
    """(kind, text, line number) of every fenced block: kind "python" or "shell"."""
    out, lines = [], open(README).read().splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w*)$", lines[i])
        if not m:
            i += 1
            continue
        start, body = i + 1, []
        i += 1
        while lines[i] != "```":
            body.append(lines[i])
            i += 1
        i += 1
        if m.group(1) == "python":
            out.append(("python", "\n".join(body) + "\n", start))
        else:
            out.append(("shell", body, start))
    return out


def commands(block):
    """The `$ ` lines of a transcript (the first README block is bare `make` lines)."""
    cmds = [ln[2:] for ln in block if ln.startswith("$ ")]
    return cmds or [ln.split("#")[0].strip() for ln in block if ln.startswith("make ")]


def strip_comment(cmd):
    return re.sub(r"\s+#[^'\"]*$", "", cmd).strip()


def env(work):
    e = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""),
             WIRECAP_RUN_DIR=os.path.join(work, "run"))
    e.pop("PYTHONPATH", None)
    return e


def run(cmd, work, **kw):
    p = subprocess.run(cmd, shell=isinstance(cmd, str), cwd=work, env=env(work),
                       capture_output=True, text=True, timeout=TIMEOUT, **kw)
    assert "Traceback" not in p.stderr, f"{cmd}:\n{p.stderr}"
    return p


def tcp443_trace(path, count=1000):
    """``count`` TCP frames to port 443 (what the AF_PACKET snippet's filter keeps)."""
    w = PcapWriter(path)
    for i in range(count):
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 40, i & 0xFFFF, 0, 64, 6, 0,
                         bytes([10, 0, 0, 2]), bytes([10, 0, 0, 1]))
        tcp = struct.pack(">HHIIBBHHH", 40000 + i % 1000, 443, i, 0, 5 << 4, 0x10, 65535, 0, 0)
        w.write(1_700_000_000_000_000_000 + i * 1000, b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
                + ip + tcp + bytes(6))
    w.close()


def run_af_packet(cmd, work):
    """The AF_PACKET snippet, as written, in a network namespace of its own that has an
    interface eth0 (one end of a veth pair; tcpreplay sends into the other end)."""
    ns, peer = f"wcreadme{os.getpid()}", "wcreadmepeer"
    trace = os.path.join(work, "tcp443.pcap")
    tcp443_trace(trace)
    ip = ["ip", "-n", ns]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run([*ip, "link", "add", AF_PACKET_IFACE, "type", "veth", "peer", "name",
                        peer], check=True)
        for dev in (AF_PACKET_IFACE, peer):
            subprocess.run([*ip, "link", "set", dev, "up"], check=True)
        inner = ["ip", "netns", "exec", ns]
        p = subprocess.Popen([*inner, "sh", "-c", cmd], cwd=work, env=env(work),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            end = time.monotonic() + TIMEOUT
            while p.poll() is None and time.monotonic() < end:
                subprocess.run([*inner, "tcpreplay", "-q", "--pps=20000", "-i", peer, trace],
                               capture_output=True)
            out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert "Traceback" not in err and p.returncode == 0, f"{cmd}: rc={p.returncode}\n{err}"
        assert os.path.getsize(os.path.join(work, "out.pcap")) > 24
    finally:
        subprocess.run(["ip", "netns", "del", ns])


def run_with_a_capture(cmd, work):
    """A command meant for another terminal while a capture runs: run it during one."""
    run_dir = os.path.join(work, "run")
    bg = subprocess.Popen([os.path.join(BIN, "wirecap"), "capture", "-i", "sim:1", "--traffic",
                           "count=1e9,rate=1e5", "-w", os.devnull], cwd=work, env=env(work),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + TIMEOUT
        while not (os.path.isdir(run_dir) and any(f.endswith(".json") for f in
                                                    os.listdir(run_dir))):
            assert bg.poll() is None, f"the background capture ended: {bg.stderr.read()}"
            assert time.monotonic() < end, "the background capture never published its stats"
            time.sleep(0.1)
        p = run(cmd, work)
        assert p.returncode == 0 and "packets" in p.stdout, f"{cmd}: {p.stdout}{p.stderr}"
    finally:
        bg.send_signal(signal.SIGINT)
        try:
            bg.wait(30)
        except subprocess.TimeoutExpired:
            bg.kill()
            bg.wait()


@pytest.mark.skipif(veth.missing() is not None, reason=str(veth.missing()))
def test_every_readme_snippet_runs_as_written(tmp_path):
    work = str(tmp_path)
    ran = []
    for kind, body, line in snippets():
        if kind == "python":
            script = os.path.join(work, f"readme_line{line}.py")
            with open(script, "w") as f:
                f.write(body)
            p = run([sys.executable, script], work)
            assert p.returncode == 0, f"README line {line}:\n{p.stderr}"
            ran.append(f"python block at line {line}")
            continue
        for cmd in commands(body):
            shell = strip_comment(cmd)
            if shell in NOT_RUN:
                continue
            assert "sudo" not in shell or shell in HOST_READS or "-i afpacket:" in shell, \
                f"README line {line}: {cmd!r} runs as root: list it in NOT_RUN or HOST_READS"
            if shell in HOST_READS:
                p = run(shell.replace("sudo ", "", 1), work)
                assert p.returncode in (0, 1, 2) and (p.stdout or p.stderr), cmd
            elif ANOTHER_TERMINAL in cmd:
                run_with_a_capture(shell, work)
            elif f"-i afpacket:{AF_PACKET_IFACE}" in shell:
                run_af_packet(shell.replace("sudo ", "", 1), work)
            elif ".venv/bin/" in shell:         # run from the checkout, with this venv
                out = os.path.join(ROOT, "ring_stats.run.ipynb")
                try:
                    p = run(shell.replace(".venv/bin/", BIN + "/"), ROOT)
                    assert p.returncode == 0 and "image/png" in open(out).read(), p.stderr
                finally:
                    if os.path.exists(out):
                        os.unlink(out)
            else:
                p = run(shell, work)
                assert p.returncode == 0, f"README line {line}: {cmd}\n{p.stdout}{p.stderr}"
            ran.append(cmd)
    assert any("--traffic trace.pcap" in c for c in ran)          # the sample trace is made
    assert sum(r.startswith("python block") for r in ran) == 3
    shutil.rmtree(os.path.join(work, "run"), ignore_errors=True)


def test_a_missing_traffic_file_is_no_such_file(tmp_path):
    p = run([os.path.join(BIN, "wirecap"), "capture", "-i", "sim:0", "--traffic", "trace.pcap"],
            str(tmp_path))
    assert p.returncode != 0 and "trace.pcap: no such file" in p.stderr, p.stderr
