#!/usr/bin/env bash
# Renders a make bench JSON document (bench/run.sh) as the Markdown tables of
# bench/RESULTS.md, on stdout.
#   bench/results.sh bench.json
set -euo pipefail
j=${1:?usage: bench/results.sh BENCH_JSON}
q() { jq -r "$@" "$j"; }

q '"Machine: \(.machine.cpu), \(.machine.cores) cores, Linux \(.machine.kernel); Python torch \(.machine.python_torch). Run \(.date), \(.seconds) s, \(.runs_per_figure) runs per figure (median [min–max])."'
echo
echo "Measured FP32 peak: $(q '"\(.peak.gflops.median) GFLOP/s [\(.peak.gflops.min)–\(.peak.gflops.max)] (`\(.peak.command)`)"')"
echo
echo "### edan-predict vs the Python PyTorch reference (faces/s, whole command)"
echo
echo "| preset | batch | faces | edan | python | edan/python | before | after/before | before/python |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|"
q '.predict[] | "| \(.preset) | \(.batch) | \(.faces) | \(.edan.median) [\(.edan.min)–\(.edan.max)] | "
  + (if .python then "\(.python.median) [\(.python.min)–\(.python.max)]" else "–" end) + " | "
  + (if .edan_over_python then "\(.edan_over_python)" else "–" end) + " | "
  + (if .before then "\(.before.median) [\(.before.min)–\(.before.max)]" else "–" end) + " | "
  + (if .after_over_before then "\(.after_over_before)" else "–" end) + " | "
  + (if .before_over_python then "\(.before_over_python)" else "–" end) + " |"'
echo
echo "Commands: \`$(q '.predict[0].edan.command')\`; \`$(q '.predict[0].python.command // "–"')\` (same model file, same PGM crops)."
echo
echo "### Conv body at batch 8 (bench-kernels body: every stage's forward, conv FLOPs counted)"
echo
echo "| preset | GFLOP/face | GFLOP/s | of peak | unfolded GFLOP/s | edan-predict end to end GFLOP/s | of peak |"
echo "|---|--:|--:|--:|--:|--:|--:|"
q '.conv_body[] | "| \(.preset) | \(.conv_gflop_per_face) | \(.gflops.median) [\(.gflops.min)–\(.gflops.max)] | \(.fraction_of_peak) | "
  + (if .unfolded then "\(.unfolded.gflops.median)" else "–" end) + " | "
  + (if .end_to_end_batch8 then "\(.end_to_end_batch8.gflops) | \(.end_to_end_batch8.fraction_of_peak)" else "– | –" end) + " |"'
echo
echo "### Reference check (same model file, 4 random faces; tolerance 1e-4)"
echo
echo "| preset | max abs Δ prob | max abs Δ landmark (px) | ok |"
echo "|---|--:|--:|---|"
q '.reference_check[] | "| \(.preset) | \(.max_abs_diff_probs) | \(.max_abs_diff_landmarks_px) | \(.ok) |"'
echo
echo "### Other figures"
echo
echo "| figure | median [min–max] | command |"
echo "|---|--:|---|"
q '"| startup to first record (s) | \(.startup_seconds.median) [\(.startup_seconds.min)–\(.startup_seconds.max)] | `\(.startup_seconds.command)` |"'
q 'if .startup_floor_seconds then (.startup_floor_seconds | to_entries[] | "| startup floor: \(.key | gsub("_"; " ")) (s) | \(.value.median) [\(.value.min)–\(.value.max)] | `\(.value.command)` |") else empty end'
q '.train[] | "| edan-train \(.preset), batch 16 (images/s) | \(.images_per_s.median) [\(.images_per_s.min)–\(.images_per_s.max)] | `\(.command)` |"'
q 'if .train_recipe then .train_recipe | "| edan-train, the default recipe'"'"'s step (images/s, batch \(.batch)) | \(.edan.images_per_s.median) [\(.edan.images_per_s.min)–\(.edan.images_per_s.max)] | `\(.edan.command)` |" else empty end'
q 'if .train_recipe.python then .train_recipe | "| the same step in Python PyTorch (images/s) | \(.python.images_per_s.median) [\(.python.images_per_s.min)–\(.python.images_per_s.max)]; edan/python \(.edan_over_python) | `\(.python.command)` |" else empty end'
q '.crop[] | "| edan-crop \(.detector) (faces/s; \(.faces) faces in \(.photos) photos) | \(.faces_per_s.median) [\(.faces_per_s.min)–\(.faces_per_s.max)] | `\(.command)` |"'
q '"| peak RSS, \(.rss_kb.short.records) records (KiB) | \(.rss_kb.short.median) [\(.rss_kb.short.min)–\(.rss_kb.short.max)] | `\(.rss_kb.command | gsub("[|]"; "\\|"))` |"'
q '"| peak RSS, \(.rss_kb.long.records) records (KiB) | \(.rss_kb.long.median) [\(.rss_kb.long.min)–\(.rss_kb.long.max)] | long/short = \(.rss_kb.long_over_short) |"'
echo
echo "### Targets of issue 7 (met / not met, in this run)"
echo
echo "| target | measured | met |"
echo "|---|--:|---|"
q '.predict[] | select(.batch == 8 and .edan_over_python != null) | "| edan-predict ≥ 1.2× the Python reference at batch 8, \(.preset) | \(.edan_over_python)× | \(if .edan_over_python >= 1.2 then "yes" else "no" end) |"'
q '.conv_body[] | select(.preset == "dan") | "| dan conv body at batch 8 ≥ 70% of the measured FP32 peak | \(.fraction_of_peak * 100 | round)% | \(if .fraction_of_peak >= 0.7 then "yes" else "no" end) |"'
q '"| startup to first record < 0.5 s (small model) | \(.startup_seconds.median) s | \(if .startup_seconds.median < 0.5 then "yes" else "no" end) |"'
q '"| peak RSS of a \(.rss_kb.long.records)-record stream within 10% of a 1000-record one | \(.rss_kb.long_over_short)× | \(if .rss_kb.long_over_short <= 1.1 then "yes" else "no" end) |"'
