"""Run the GPU test suite under compute-sanitizer memcheck, one process per chunk of tests.

One memcheck process over the whole suite runs out of GPU memory (docs/benchmarks.md, session 11), so the
collected test ids are split into chunks of ``--chunk`` and each chunk runs in its own process, with
CuPy's memory pool off (``NMREF_GPU_NO_POOL=1``: every array is its own allocation, so memcheck sees
each bound). Resumable: ``--start K`` begins at chunk K, and no new chunk starts after ``--deadline``
seconds (the device machine's per-command limit). Exit status: 0 if every chunk run passed with
0 memcheck errors.

    python tools/memcheck_gpu.py [--chunk 250] [--start 0] [--deadline 540] [--log-dir DIR]
"""
import argparse
import os
import re
import subprocess
import sys
import time

FILES = ["tests/test_gpu.py", "tests/test_gpu_dispatch.py", "tests/test_gpu_launch.py"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunk", type=int, default=250, help="tests per memcheck process")
    ap.add_argument("--start", type=int, default=0, help="first chunk to run")
    ap.add_argument("--deadline", type=float, default=540.0, help="start no chunk after this many seconds")
    ap.add_argument("--log-dir", default=os.environ.get("OUT", "."), help="where each chunk's output goes")
    args = ap.parse_args()
    t0 = time.time()
    listing = subprocess.run([sys.executable, "-m", "pytest", "-o", "addopts=", "--collect-only", "-q", *FILES],
                             capture_output=True, text=True, check=True).stdout
    ids = [line for line in listing.splitlines() if "::" in line]
    chunks = [ids[i:i + args.chunk] for i in range(0, len(ids), args.chunk)]
    print(f"{len(ids)} tests in {len(chunks)} chunks; starting at chunk {args.start}", flush=True)
    env = dict(os.environ, NMREF_GPU_NO_POOL="1")
    ok = True
    for i in range(args.start, len(chunks)):
        if time.time() - t0 > args.deadline:
            print(f"deadline reached: resume with --start {i}", flush=True)
            return 2
        ts = time.time()
        r = subprocess.run(["compute-sanitizer", "--tool", "memcheck", "--error-exitcode", "9", sys.executable,
                            "-m", "pytest", "-o", "addopts=", "-q", "-p", "no:cacheprovider", *chunks[i]],
                           capture_output=True, text=True, env=env)
        text = r.stdout + r.stderr
        with open(os.path.join(args.log_dir, f"memcheck_{i}.txt"), "w") as f:
            f.write(text)
        summary = re.findall(r"ERROR SUMMARY: \d+ errors?", text)
        counts = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed)", line)]
        ok &= r.returncode == 0
        print(f"chunk {i}: exit {r.returncode}; {counts[-1].strip('= ') if counts else '?'}; "
              f"{summary[-1] if summary else 'no memcheck summary'}; {time.time() - ts:.0f} s", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
