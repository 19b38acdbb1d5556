#!/usr/bin/env bash
# Run HERE (the dev machine, with network) before taking GPU numbers on a lent GPU machine, which
# has CUDA, torch and nvcc but cannot download: fetches the wheels the renderers need there
# (moderngl, glcontext, gsplat; numpy, jaxtyping, rich and ninja are in its image) into .whl/,
# and the GL loader packages (libEGL/libOpenGL/glvnd) into .gl/, both git-ignored locally.
# Then: device run with carry [".whl", ".gl"] and command "bash benchmarks/gpu/run.sh".
set -euo pipefail
cd "$(dirname "$0")/../.."
exclude=$(git rev-parse --git-path info/exclude); mkdir -p "$(dirname "$exclude")"
for d in /.whl/ /.gl/; do grep -qxF "$d" "$exclude" 2>/dev/null || echo "$d" >> "$exclude"; done
PY=.venv/bin/python; [ -x "$PY" ] || PY=python3
mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "moderngl==5.13.0" "glcontext==3.1.0" "gsplat==1.5.3"
mkdir -p .gl /tmp/amd64/partial
o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
apt-get "${o[@]}" update -qq
(cd .gl && apt-get "${o[@]}" download libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null)
ls -la .whl .gl
