#!/usr/bin/env bash
# The full validation on a lent GPU machine, as one prepared script (issue 5).
#
#   analysis/gpu_run.sh OUTDIR          # full size (~6 min on one H100)
#   analysis/gpu_run.sh OUTDIR --tiny   # dry run of the same logic at tiny sizes (CPU ok)
#   analysis/gpu_run.sh OUTDIR --budget # only device.txt and table1_budget/ (issue 13,
#                                       # full size, ~5 min estimated on one H100: one
#                                       # call within a 10-minute device limit)
#   analysis/gpu_run.sh OUTDIR --table1 # only device.txt and table1_matched/ (issue 24:
#                                       # the first entry, sized for a 15-minute GPU
#                                       # window; at most 9 min, compilation included)
#   analysis/gpu_run.sh OUTDIR --shapes # only device.txt and shape_population/ (issue
#                                       # 25; resumable: call again to finish the runs)
#   analysis/gpu_run.sh OUTDIR --suggest # only device.txt and suggest_validation/
#                                       # (issue 26; resumable: call again to finish)
#
# Priority order (a cut-off run keeps the earlier parts): table1_matched (issue 24),
# shape_population (issue 25), suggest_validation (issue 26), mode_gap (issue 27:
# the trained width 8192), the issue 28 benchmarks (bench/spectra_lanczos.json,
# bench/regression.json, bench/ct.json), then the older parts below in their order.
#
# Runs from the source tree (PYTHONPATH=.) with the machine's Python (3.12, jax CUDA,
# optax, numpy, scipy, scikit-image, matplotlib, tqdm, torch preinstalled); installs
# nothing and needs no network. Writes everything under OUTDIR:
#   device.txt              nvidia-smi, jax devices, versions
#   table1_matched/         issue 24, FIRST: the paper's 512^2 Table 1 with Adam
#                           networks (4 mappings trained at once per image and seed),
#                           5 natural (every bundled photo reaching 512 px without
#                           upsampling; 8 asked) + 8 text images, 3 seeds, seed by
#                           seed; one JSON per finished run under runs/ (atomic), so a
#                           cut-off keeps whole calls. ~200 networks x ~1.7 s on one
#                           H100 (the committed per-network rate; unmeasured for this
#                           entry): timeout 540 s. The matched NTK columns run on CPU
#                           afterwards (python -m analysis.fig_table1_matched
#                           --summarize-only --out DIR after adding NTK runs).
#   shape_population/       issue 25, after table1_matched: the 8 x 256 occupancy
#                           networks on fresh points (Adam sigmoid-BCE, 4 shapes x 4
#                           mappings, 10,000 steps of 32,768 points; plain-SGD control
#                           on one shape), one JSON per run under networks/runs/
#                           (atomic; a later call resumes), then the population flow at
#                           128^3 (none: dense at the largest grid within the dense
#                           cap, 28^3 at 4 GiB, own folder) with the networks on its time
#                           axis; each mapping checkpointed under parts/ (a later call
#                           resumes). Unmeasured; by FLOP count ~1 min a network on one
#                           H100, so the 20 runs need two or three calls of --shapes.
#                           CPU (2 cores, loaded): one 128^3 flow, positional, one time,
#                           147 s, 128 Lanczos steps, 3.4 GB RSS.
#   suggest_validation/     issue 26, after shape_population: the Gaussian sigma sweep of
#                           the scale-suggestion validation at 512^2, 16 images (the 5
#                           bundled photos reaching 512 px + 11 text), 7 sigmas per set,
#                           2 seeds, the paper's 4 x 256 Adam networks (all sigmas of an
#                           image and seed in one train_ensemble call), one JSON per run
#                           under runs/ (atomic; a later call resumes); the Table 1
#                           sigma's runs are read from table1_matched/runs/ by key. Then
#                           FreSh's untrained-network distances. ~200 networks x ~1.7 s
#                           (the Table 1 entry's per-network rate; unmeasured here):
#                           timeout 540 s. The NTK curves and the suggestion run on CPU
#                           afterwards (python -m analysis.fig_suggest_validation --size
#                           gpu --out DIR --reuse DIR/../table1_matched), then the table.
#   bench/training.json     steps/s of the paper's image config: ntkspec vs plain JAX vs
#                           PyTorch (same run, same GPU) + the six-network sweep time
#   validation/             ntkspec validation at size "gpu": empirical-NTK convergence
#                           (widths 64..8192), GD dynamics vs theory (widths to 8192),
#                           Table 1 with networks at 512x512 / 2000 steps, sigma sweep,
#                           figures, JSON and summary.md (device named in every file)
#   table1_budget/          Table 1 at the training budget (issue 13) at the paper's
#                           size, 256^2 -> 512^2: NTK theory after T = 2000 GD steps,
#                           centred GD networks (same eta, T; widths 64/256/1024),
#                           Adam networks, t = inf, paper; 3 images x 2 seeds per set;
#                           JSON, Markdown and PNG, device in each (provenance, notes,
#                           title). Theory rows of non-periodic mappings need the
#                           structured gd_dynamics of issue 12; until it lands they
#                           record the dense path's refusal instead of a number.
#   bench/scaling.json      issue 18: sharded matvec scaling on the real devices
#   mri_shape/              MRI and 3D-shape networks of Table 1 (issue 15), JSON
#   *.log                   the console output of each part
# and packs OUTDIR into OUTDIR.tar.gz (one file to copy back).
set -uo pipefail
OUT=${1:?usage: analysis/gpu_run.sh OUTDIR [--tiny | --budget | --table1 | --shapes | --suggest]}
MODE=${2:-}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
# JAX must not grab most of the GPU memory: the PyTorch loop runs beside it.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export TF_CPP_MIN_LOG_LEVEL=2
PY=${PYTHON:-python3}

ONLY_BUDGET=0
ONLY_TABLE1=0
if [ "$MODE" = "--budget" ]; then
  ONLY_BUDGET=1
  MODE=""
fi
if [ "$MODE" = "--table1" ]; then
  ONLY_TABLE1=1
  MODE=""
fi
ONLY_SHAPES=0
if [ "$MODE" = "--shapes" ]; then
  ONLY_SHAPES=1
  MODE=""
fi
ONLY_SUGGEST=0
if [ "$MODE" = "--suggest" ]; then
  ONLY_SUGGEST=1
  MODE=""
fi
if [ "$MODE" = "--tiny" ]; then
  T1SIZE=tiny
  SIZE=tiny
  BENCH=(--pixels 1024 --steps 1 --rounds 1 --sweep --sweep-steps 3)
  T_BENCH=600; T_VAL=600; T_BUDGET=600; BUDGET_SIZE=tiny
else
  T1SIZE=gpu
  SIZE=gpu
  BENCH=(--sweep)
  T_BENCH=120; T_VAL=420; T_BUDGET=480; BUDGET_SIZE=gpu
fi

{
  date -u
  nvidia-smi 2>/dev/null || echo "no nvidia-smi"
  "$PY" - <<'PY'
import platform, jax, numpy, optax
print("python", platform.python_version(), "jax", jax.__version__, "numpy",
      numpy.__version__, "optax", optax.__version__)
print("devices", jax.devices(), "backend", jax.default_backend())
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.cuda.is_available())
except Exception as err:  # noqa: BLE001
    print("torch unavailable:", err)
PY
} > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

start=$(date +%s)
status=0
# Issue 25: the 3D shape column as the fresh-sample networks see it (see the header).
run_shapes() {
  if [ "$MODE" = "--tiny" ]; then SN=(--quick); SP=(--quick); else SN=(); SP=(); fi
  timeout 360 "$PY" -m analysis.shape_networks_fresh "${SN[@]}" \
    --out "$OUT/shape_population/networks" 2>&1 | tee -a "$OUT/shape_networks.log" \
    || status=1
  # the stationary mappings (Krylov/FFT at 128^3), then "none" (dense, its own folder)
  timeout 300 "$PY" -m analysis.fig_shape_population "${SP[@]}" \
    --mappings basic,positional,gaussian --networks "$OUT/shape_population/networks" \
    --out "$OUT/shape_population" 2>&1 | tee -a "$OUT/shape_population.log" || status=1
  timeout 300 "$PY" -m analysis.fig_shape_population "${SP[@]}" --mappings none \
    --networks "$OUT/shape_population/networks" --out "$OUT/shape_population/none" \
    2>&1 | tee -a "$OUT/shape_population.log" || status=1
  echo "shape_population done after $(( $(date +%s) - start )) s (status $status)"
}
# Issue 26: the scale suggestion's sigma sweep at 512^2 (see the header).
run_suggest() {
  if [ "$MODE" = "--tiny" ]; then SV=(--size quick --reuse none)
  else SV=(--size gpu --reuse "$OUT/table1_matched"); fi
  timeout 540 "$PY" -m analysis.fig_suggest_validation --networks "${SV[@]}" \
    --out "$OUT/suggest_validation" 2>&1 | tee -a "$OUT/suggest_validation.log" \
    || status=1
  timeout 240 "$PY" -m analysis.fig_suggest_validation --kinds fresh "${SV[@]}" \
    --out "$OUT/suggest_validation" 2>&1 | tee -a "$OUT/suggest_validation.log" \
    || status=1
  echo "suggest_validation done after $(( $(date +%s) - start )) s (status $status)"
}
# Issue 27: the per-mode gap study with the trained width 8192 (size "gpu").
run_mode_gap() {
  if [ "$MODE" = "--tiny" ]; then MG=(--size tiny); else MG=(--size gpu); fi
  timeout 420 "$PY" -m analysis.fig_mode_gap "${MG[@]}" --out "$OUT/mode_gap" 2>&1 \
    | tee -a "$OUT/mode_gap.log" || status=1
  echo "mode_gap done after $(( $(date +%s) - start )) s (status $status)"
}
# Issue 28, after the science entries: absolute times on the device (top-100 at 512^2
# and 1024^2 against ARPACK on the same matvec, the paper regression, CT 512^2).
run_perf() {
  if [ "$MODE" = "--tiny" ]; then PS=(--quick); PQ=(--quick); else PS=(--sizes 512,1024); PQ=(); fi
  mkdir -p "$OUT/bench"
  timeout 300 "$PY" -m analysis.bench_spectra --lanczos-vs-arpack "${PS[@]}" \
    --out "$OUT/bench/spectra_lanczos.json" 2>&1 | tee -a "$OUT/perf.log" || status=1
  timeout 120 "$PY" -m analysis.bench_regression "${PQ[@]}" \
    --out "$OUT/bench/regression.json" 2>&1 | tee -a "$OUT/perf.log" || status=1
  timeout 180 "$PY" -m analysis.bench_ct "${PQ[@]}" \
    --out "$OUT/bench/ct.json" 2>&1 | tee -a "$OUT/perf.log" || status=1
  echo "perf done after $(( $(date +%s) - start )) s (status $status)"
}
if [ "$ONLY_SUGGEST" = 1 ]; then
  run_suggest
  echo "all done after $(( $(date +%s) - start )) s (status $status)" | tee -a "$OUT/device.txt"
  tar -czf "${OUT%/}.tar.gz" -C "$(dirname "$OUT")" "$(basename "$OUT")" || status=1
  exit $status
fi
if [ "$ONLY_SHAPES" = 1 ]; then
  run_shapes
  echo "all done after $(( $(date +%s) - start )) s (status $status)" | tee -a "$OUT/device.txt"
  tar -czf "${OUT%/}.tar.gz" -C "$(dirname "$OUT")" "$(basename "$OUT")" || status=1
  exit $status
fi
# Issue 24, first: the paper's 512^2 Table 1 with Adam networks (see the header).
if [ "$ONLY_BUDGET" = 0 ]; then
  timeout 540 "$PY" -m analysis.fig_table1_matched --networks "$T1SIZE" \
    --out "$OUT/table1_matched" 2>&1 | tee "$OUT/table1_matched.log" || status=1
  echo "table1_matched done after $(( $(date +%s) - start )) s (status $status)"
fi
if [ "$ONLY_TABLE1" = 1 ]; then
  echo "all done after $(( $(date +%s) - start )) s (status $status)" | tee -a "$OUT/device.txt"
  tar -czf "${OUT%/}.tar.gz" -C "$(dirname "$OUT")" "$(basename "$OUT")" || status=1
  exit $status
fi
if [ "$ONLY_BUDGET" = 0 ]; then
  run_shapes
  run_suggest
  run_mode_gap
  run_perf
fi
if [ "$ONLY_BUDGET" = 0 ]; then
  timeout "$T_BENCH" "$PY" -m analysis.bench_training "${BENCH[@]}" \
    --out "$OUT/bench/training.json" 2>&1 | tee "$OUT/bench.log" || status=1
  echo "bench done after $(( $(date +%s) - start )) s (status $status)"
  timeout "$T_VAL" "$PY" -m analysis.fig_validation --size "$SIZE" \
    --out "$OUT/validation" 2>&1 | tee "$OUT/validation.log" || status=1
  # CT column of Table 1: trained 4 x 256 networks, Adam, as the 2d_CT notebook (issue 14).
  if [ "$MODE" = "--tiny" ]; then CT=(--res 64 --images 1 --steps 20); else CT=(); fi
  timeout 600 "$PY" -m analysis.ct_networks "${CT[@]}" \
    --out "$OUT/ct/networks.json" 2>&1 | tee "$OUT/ct.log" || status=1
fi
# Issue 18: strong scaling of the sharded matvecs on the machine's real devices
# (1, 2, 4, 8 of them, as many as there are), device named in the JSON; the target
# (efficiency >= 0.8 per added device) needs more than one real device.
if [ "$ONLY_BUDGET" = 0 ]; then
  if [ "$MODE" = "--tiny" ]; then SCALE=(--quick); else SCALE=(); fi
  timeout 300 "$PY" -m analysis.bench_scaling --real "${SCALE[@]}" \
    --out "$OUT/bench/scaling.json" 2>&1 | tee "$OUT/scaling.log" || status=1
fi
timeout "$T_BUDGET" "$PY" -m analysis.fig_table1_budget --size "$BUDGET_SIZE" \
  --out "$OUT/table1_budget" 2>&1 | tee "$OUT/table1_budget.log" || status=1
echo "table1_budget done after $(( $(date +%s) - start )) s (status $status)"
# Scale suggestion (issue 16): trained 4 x 256 networks against sigma on 5 natural + 5 text
# images at 512^2 (the study's sigmas), then the scale_suggestion study scored on them.
if [ "$MODE" = "--tiny" ]; then DN=(--res 64 --width 64 --steps 50 --count 1); DRES=64
else DN=(--res 512 --width 256 --steps 2000 --lr 1e-3); DRES=512; fi
timeout 900 "$PY" analysis/design_networks.py "${DN[@]}" \
  --out "$OUT/design/networks_gpu.json" 2>&1 | tee "$OUT/design.log" || status=1
timeout 600 "$PY" -c "import sys; from ntkspec.studies import scale_suggestion as s; \
s.run(sys.argv[1], res=int(sys.argv[2]), networks_json=sys.argv[3])" \
  "$OUT/design" "$DRES" "$OUT/design/networks_gpu.json" 2>&1 | tee -a "$OUT/design.log" \
  || status=1
# MRI and 3D-shape columns of Table 1 with trained networks (issue 15): MRI 4 x 256 on
# 96^3 Shepp-Logan (6 phantoms x 4 mappings x 1000 Adam steps, est. ~8 min on one H100)
# and occupancy 8 x 256 (4 shapes x 4 mappings x 10,000 steps of 32,768 fresh points,
# est. ~4 min, both estimates unmeasured); two calls, each within a 10-minute device
# limit. Alone: PYTHONPATH=. python3 -m analysis.mri_shape_networks --task mri (or shape)
if [ "$MODE" = "--tiny" ]; then
  MRI=(--mri-res 16 --mri-images 1 --mri-steps 5)
  SHAPE=(--shapes 1 --shape-steps 5 --batch 1024 --eval-points 4096)
else
  MRI=(); SHAPE=()
fi
if [ "$ONLY_BUDGET" = 0 ]; then
  timeout 580 "$PY" -m analysis.mri_shape_networks --task mri "${MRI[@]}" \
    --out "$OUT/mri_shape/mri_networks.json" 2>&1 | tee "$OUT/mri_networks.log" || status=1
  timeout 580 "$PY" -m analysis.mri_shape_networks --task shape "${SHAPE[@]}" \
    --out "$OUT/mri_shape/shape_networks.json" 2>&1 | tee "$OUT/shape_networks.log" || status=1
  echo "mri_shape done after $(( $(date +%s) - start )) s (status $status)"
fi
echo "all done after $(( $(date +%s) - start )) s (status $status)" | tee -a "$OUT/device.txt"
# One archive beside OUTDIR, for machines that hand back only a few files per run.
tar -czf "${OUT%/}.tar.gz" -C "$(dirname "$OUT")" "$(basename "$OUT")" || status=1
exit $status
