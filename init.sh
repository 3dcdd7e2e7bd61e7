#!/usr/bin/env bash
# One-time (and idempotent) set-up of this checkout, into the active Python:
#   1. installs requirements.txt if something is missing or at the wrong version,
#   2. installs this checkout editable (pip install --no-build-isolation -e .): lib, rfcn and dff_rfcn import
#      from any folder, and the custom ops are built in place (lib/ops/_C*.so); ninja recompiles only what
#      changed,
#   3. creates data/, model/ and output/,
#   4. prints what was built (CPU only, or CPU + CUDA for which architectures), imported from another folder.
# A second run only checks and prints (seconds). Environment: PYTHON (default python3),
# FORCE_CUDA / CUDA_HOME / TORCH_CUDA_ARCH_LIST / MAX_JOBS / DFF_BUILD_TEMP as setup.py documents.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
PY=${PYTHON:-python3}

if ! "$PY" - <<'PYEOF' 2>/dev/null; then
import importlib.metadata as md, re, sys
for line in open("requirements.txt"):
    line = line.split("#")[0].strip()
    if not line:
        continue
    m = re.match(r"([A-Za-z0-9_.\-]+)\s*(==|>=)?\s*([^\s;]*)", line)
    name, op, ver = m.groups()
    have = md.version(name)  # raises if missing
    if op == "==" and have.split("+")[0] != ver:
        sys.exit(1)
PYEOF
  echo "init.sh: installing requirements.txt into $("$PY" -c 'import sys; print(sys.prefix)')"
  "$PY" -m pip install -q -r requirements.txt
fi

# Always hand the build to pip and setup.py: ninja recompiles only what changed (seconds when nothing did),
# which an mtime comparison of the .so against csrc/ cannot decide reliably.
mkdir -p build
ls build/temp*/build.ninja >/dev/null 2>&1 || echo "init.sh: building the custom ops (log: build/init_build.log; a first CUDA build takes minutes)"
# editable_mode=compat: the checkout's folder goes on sys.path (a .pth file), where a regular package wins over
# a same-named folder without __init__.py (/lib on Linux, from `cd /`); setuptools' default import hook would
# lose to it
if ! "$PY" -m pip install -v --no-build-isolation --no-deps --config-settings editable_mode=compat -e . \
    > build/init_build.log 2>&1; then
  tail -n 40 build/init_build.log
  echo "init.sh: the build failed; the whole log is build/init_build.log (README: Troubleshooting)" >&2
  exit 1
fi
grep -o 'setup.py: .*' build/init_build.log | awk '!seen[$0]++' || true  # pip runs setup.py several times

mkdir -p data model output
here=$(pwd)
(cd / && "$PY" -c "
import os, sys
import lib, lib.ops as o, rfcn, dff_rfcn
if os.path.realpath(lib.__file__) != os.path.realpath(os.path.join(sys.argv[1], 'lib', '__init__.py')):
    sys.exit(f'init.sh: lib imports from {lib.__file__}, not from this checkout ({sys.argv[1]})')
print('init.sh: installed (editable) from', sys.argv[1], '- ops built for', o.build_info())" "$here")
