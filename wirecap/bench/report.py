"""What every benchmark prints: the machine, min/median/max of repeats, a table and JSON."""
import json
import os
import platform
import statistics
import sys

from ..stats import table       # the benchmarks print their tables as stats does

def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "kernel": platform.release()}


def spread(samples):
    """min/median/max of repeated measurements (never a single number: the machine is noisy)."""
    return {"min": min(samples), "median": statistics.median(samples), "max": max(samples),
            "n": len(samples)}


def emit(result, text, as_json, out=None):
    out = out or sys.stdout
    if as_json:
        json.dump(result, out, indent=2)
        out.write("\n")
    else:
        m = result["machine"]
        out.write(f"{result['title']}\nmachine: {m['cpu']}, {m['cores']} cores, "
                  f"Python {m['python']}, Linux {m['kernel']}\n\n{text}\n")
