#!/usr/bin/env bash
# Compile every tracked .cu file for sm_80 and sm_90a so that a kernel that does not build cannot land.
# A file whose kernels are templates instantiated on demand (nmref_gpu/kernels.py lists them) is
# compiled through the unit `python3 nmref_gpu/kernels.py FILE` prints: exactly the instances shipped.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
mapfile -t files < <(git ls-files '*.cu')
if [ ${#files[@]} -eq 0 ]; then echo "compile_cuda: no .cu files"; exit 0; fi
command -v nvcc >/dev/null || { echo "compile_cuda: nvcc not found" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for f in "${files[@]}"; do
  src="$f"
  unit=$(python3 nmref_gpu/kernels.py "$f")
  if [ -n "$unit" ]; then
    src="$tmp/$(basename "$f" .cu)_instances.cu"
    printf '%s\n' "$unit" > "$src"
  fi
  nvcc -std=c++17 -O3 --threads 0 -Werror all-warnings -I"$(dirname "$f")" \
       -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90a,code=sm_90a \
       -c "$src" -o "$tmp/$(basename "$f").o"
  echo "compile_cuda: ok $f (sm_80, sm_90a${unit:+; $(grep -c '(void \*)&\|^NMREF_[A-Z]*_KERNEL(' "$src") instances})"
done
