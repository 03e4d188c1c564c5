#!/usr/bin/env bash
# GPU measurements in one go (issue 20): PEBBLE loop env steps/s with device=auto (GPU) vs device=cpu for each
# learner, and the VLM reward (ViT-B-32, random weights) frames/s and its overhead over plain SAC with hardware
# EGL rendering. Run from the repository root on a machine with an NVIDIA GPU, after `make setup setup-vlm`:
#
#     bash bench/gpu_check.sh                      # ~6-8 min on a fast machine
#     STEPS=3000 bash bench/gpu_check.sh           # shorter
#
# It writes the `learner-speed:auto`, `learner-speed:cpu` and `gpu-check` sections of BENCHMARKS.md and keeps logs
# in runs/bench/gpu_check_<time>/. Which parts use the GPU depends on the environment, and the script says so:
# torch (reward model, SB3 SAC, CLIP) needs a CUDA torch build: .venv has the CPU wheel, .venv-vlm PyPI's CUDA
# build, so the PEBBLE runs use $PY (default: .venv-vlm/bin/python when its torch sees a GPU); the sbx learners
# run on the GPU only where a CUDA jaxlib matching the pinned jax is installed (`pip install "jax[cuda12]==0.10.2"`),
# else JAX stays on the CPU (device=auto never fails for lack of one).
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${STEPS:-5000}
LABELS=${LABELS:-40}
VLM_PY=${VLM_PY:-.venv-vlm/bin/python}
OUT=${OUT:-runs/bench/gpu_check_$(date +%Y%m%d-%H%M%S)}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

gpu_python() {  # the first interpreter whose torch sees a CUDA device
  for py in "${PY:-}" "$VLM_PY" .venv/bin/python; do
    [ -n "$py" ] && [ -x "$py" ] || continue
    if "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
      echo "$py"; return 0
    fi
  done
  return 1
}

PY=$(gpu_python) || { echo "gpu_check: no interpreter here has a CUDA torch (tried \$PY, $VLM_PY, .venv); run on a" \
  "GPU machine after 'make setup-vlm', or set PY=/path/to/python" >&2; exit 2; }
mkdir -p "$OUT"
echo "gpu_check: using $PY" | tee "$OUT/summary.md"
{
  echo; echo '```'; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
  "$PY" - <<'EOF'
import importlib.util, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name())
if importlib.util.find_spec("jax"):
    import jax
    print("jax", jax.__version__, "devices", [f"{d.platform}:{d.id}" for d in jax.devices()])
else:
    print("jax: not installed in this interpreter (the sbx learners cannot run here)")
EOF
  echo '```'
} 2>&1 | tee -a "$OUT/summary.md"

# 1. PEBBLE loop: device=auto (GPU where the library has one) and device=cpu, every learner side by side.
LEARNERS=sb3,sbx,crossq
"$PY" -c "import sbx" 2>/dev/null || LEARNERS=sb3
for dev in auto cpu; do
  "$PY" bench/learner_speed.py --steps "$STEPS" --labels "$LABELS" --seeds 0 --learners "$LEARNERS" \
    --device "$dev" --runs-dir "$OUT/runs" --update-benchmarks 2>&1 | tee "$OUT/learner_speed_$dev.log"
done

# 2. VLM reward: frames/s on the GPU and the overhead over plain SAC, rendering with EGL (hardware on NVIDIA).
if "$VLM_PY" -c "import open_clip" 2>/dev/null; then
  MUJOCO_GL=egl "$VLM_PY" bench/vlm_reward.py --model ViT-B-32 --device cuda --steps 1000 --frame-strides 1,4 \
    --note "GPU run of bench/gpu_check.sh (random ViT-B-32 weights, MUJOCO_GL=egl)." 2>&1 | tee "$OUT/vlm_reward.log"
  { echo; sed -n '/^### VLM-RM reward/,$p' "$OUT/vlm_reward.log"; } >> "$OUT/summary.md"
else
  echo "gpu_check: $VLM_PY has no open_clip; VLM reward not measured (make setup-vlm)" | tee -a "$OUT/summary.md"
fi

"$PY" - "$OUT/summary.md" <<'EOF'
import sys
sys.path.insert(0, "bench")
from common import BENCHMARKS, update_section
text = open(sys.argv[1]).read()
update_section(BENCHMARKS, "gpu-check", "### GPU check (`bash bench/gpu_check.sh`)\n\n" + text)
print(f"gpu_check: wrote the gpu-check section of {BENCHMARKS}")
EOF
