# shellcheck shell=bash disable=SC2034
# Stage runner and report writer of tools/gpu_check.sh (sourced, not run).
#
# A stage is a bash function stage_<name> in gpu_check.sh. run_stages runs
# each selected stage as its own process (`gpu_check.sh __stage <name>`)
# under `timeout`, in a box of min(its own seconds, what the global budget has
# left), so a stage that hangs is killed with everything it started and the
# next stage still runs. After every stage the report (markdown + JSON) is
# rewritten in full and copied to $OUT, so a call cut off from outside still
# returns what was measured up to then.
#
# A stage reports through files in $GC_WORK: <name>.detail (one line for the
# summary table: `detail "..."`), <name>.md (a section of the report),
# <name>.json (a JSON value embedded as the stage's "data"), <name>.log (its
# stdout and stderr). Exit codes: 0 ok, 77 skipped (the detail says why), any
# other failed; 124/137 from timeout: the box ran out.
#
# Test hooks (tests/tools/gpu_check_dry_run.sh): LKASEG_GPU_CHECK_PLANT
# ="fail:<stage> slow:<stage> ..." replaces a stage's body by a failure or a
# sleep longer than any box, also in a dry run.

GC_SKIP_RC=77

# The summary-table line of the running stage.
detail() { printf '%s\n' "$*" >"$GC_WORK/$GC_STAGE.detail"; }
# A markdown section of the running stage (appended; stdin).
section() { cat >>"$GC_WORK/$GC_STAGE.md"; }
# Skip the running stage with a reason.
skip() { detail "$*"; exit "$GC_SKIP_RC"; }
# Seconds left before the running stage's box closes (minus a margin).
stage_left() { echo $((GC_STAGE_DEADLINE - $(date +%s) - ${1:-2})); }

json_str() {  # a JSON string literal of $1
  local s=$1
  s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\n'/\\n}; s=${s//$'\r'/\\r}; s=${s//$'\t'/\\t}
  s="$(printf '%s' "$s" | tr -d '\000-\010\013\014\016-\037')"
  printf '"%s"' "$s"
}

# Runs one stage in this process (the __stage entry point); plants first.
gc_dispatch() {
  local name=$1 p
  export GC_STAGE=$name
  for p in ${LKASEG_GPU_CHECK_PLANT:-}; do
    case "$p" in
      "fail:$name") detail "planted failure"; echo "planted failure in $name"; exit 3 ;;
      "slow:$name") detail "planted hang"; echo "planted hang in $name"; sleep 100000; exit 0 ;;
    esac
  done
  "stage_$name"
}

gc_planted() { [[ " ${LKASEG_GPU_CHECK_PLANT:-} " == *":$1 "* ]]; }

# run_stages <self>: runs GC_STAGES in order (arrays GC_BOX, GC_NEEDS_GPU,
# GC_TITLE keyed by stage), fills GC_STATUS, GC_SECS, GC_USED_BOX.
run_stages() {
  local self=$1 s box left rc t0 secs
  for s in "${GC_STAGES[@]}"; do
    : >"$GC_WORK/$s.md"
    rm -f "$GC_WORK/$s.detail" "$GC_WORK/$s.json"
    GC_SECS[$s]=0 GC_USED_BOX[$s]=0
    if ! gc_selected "$s"; then
      GC_STATUS[$s]="skipped: not selected"
    elif [[ $GC_DRY == 1 && ${GC_NEEDS_GPU[$s]} == 1 ]] && ! gc_planted "$s"; then
      GC_STATUS[$s]="skipped: dry run"
    else
      left=$((GC_BUDGET - ($(date +%s) - GC_T0) - GC_RESERVE))
      box=${GC_BOX[$s]}
      ((left < box)) && box=$left
      if ((box < 3)); then
        GC_STATUS[$s]="skipped: out of budget"
      else
        GC_USED_BOX[$s]=$box
        printf '== %-14s box %4d s (budget left %d s) ...\n' "$s" "$box" "$left"
        t0=$(date +%s)
        GC_STAGE_DEADLINE=$((t0 + box)) timeout -k 5 "$box" "$self" __stage "$s" >"$GC_WORK/$s.log" 2>&1
        rc=$?
        secs=$(($(date +%s) - t0))
        GC_SECS[$s]=$secs
        case $rc in
          0) GC_STATUS[$s]="ok" ;;
          "$GC_SKIP_RC") GC_STATUS[$s]="skipped: $(gc_detail "$s")"; rm -f "$GC_WORK/$s.detail" ;;
          124 | 137) GC_STATUS[$s]="TIMEOUT"; GC_FAILED=1
            [[ -s $GC_WORK/$s.detail ]] && sed -i 's/^/at the timeout: /' "$GC_WORK/$s.detail" ;;
          *) GC_STATUS[$s]="FAILED (exit $rc)"; GC_FAILED=1 ;;
        esac
        if [[ $rc != 0 && $rc != "$GC_SKIP_RC" ]]; then
          { echo; echo "### $s: last lines of its log"; echo '```'; tail -n 40 "$GC_WORK/$s.log"; echo '```'; } >>"$GC_WORK/$s.md"
        fi
      fi
    fi
    printf '   %-14s %-22s %4s s  %s\n' "$s" "${GC_STATUS[$s]}" "${GC_SECS[$s]}" "$(gc_detail "$s")"
    write_report
  done
}

gc_selected() {
  local s=$1
  [[ -n ${GC_ONLY:-} && " $GC_ONLY " != *" $s "* ]] && return 1
  [[ " ${GC_SKIP:-} " == *" $s "* ]] && return 1
  return 0
}

gc_detail() { [[ -s $GC_WORK/$1.detail ]] && head -n 1 "$GC_WORK/$1.detail" | cut -c1-300; }

summary_table() {
  local s
  echo "| stage | result | seconds | box s | detail |"
  echo "| --- | --- | --- | --- | --- |"
  for s in "${GC_STAGES[@]}"; do
    printf '| %s | %s | %s | %s | %s |\n' "$s" "${GC_STATUS[$s]:-not run yet}" "${GC_SECS[$s]:-0}" \
      "${GC_USED_BOX[$s]:-0}" "$(gc_detail "$s" | sed 's/|/\\|/g')"
  done
}

# Rewrites <report>.md and <report>.json whole (via a temporary file) and
# copies them, with a tarball of the stage logs, to $OUT.
write_report() {
  local s md="$GC_REPORT.md" js="$GC_REPORT.json" first=1 data
  mkdir -p "$(dirname "$GC_REPORT")"
  {
    echo "# GPU check, $GC_DATE, $GC_CARD"
    echo
    echo "$GC_META_LINE"
    echo
    [[ $GC_DRY == 1 ]] && { echo "**Dry run** (no GPU used): stages that need one are listed as skipped."; echo; }
    summary_table
    for s in "${GC_STAGES[@]}"; do
      [[ -s $GC_WORK/$s.md ]] || continue
      echo
      echo "## $s"
      echo
      cat "$GC_WORK/$s.md"
    done
  } >"$md.tmp" && mv "$md.tmp" "$md"
  {
    printf '{"date": %s, "card": %s, "dry_run": %s, "budget_s": %d, "elapsed_s": %d, "meta": {' \
      "$(json_str "$GC_DATE")" "$(json_str "$GC_CARD")" "$([[ $GC_DRY == 1 ]] && echo true || echo false)" \
      "$GC_BUDGET" "$(($(date +%s) - GC_T0))"
    local k mfirst=1
    for k in "${!GC_META[@]}"; do
      ((mfirst)) || printf ', '
      mfirst=0
      printf '%s: %s' "$(json_str "$k")" "$(json_str "${GC_META[$k]}")"
    done
    printf '}, "stages": ['
    for s in "${GC_STAGES[@]}"; do
      ((first)) || printf ', '
      first=0
      data=null
      [[ -s $GC_WORK/$s.json ]] && data="$(cat "$GC_WORK/$s.json")"
      printf '{"name": %s, "title": %s, "status": %s, "seconds": %d, "box_s": %d, "detail": %s, "data": %s}' \
        "$(json_str "$s")" "$(json_str "${GC_TITLE[$s]}")" "$(json_str "${GC_STATUS[$s]:-not run yet}")" \
        "${GC_SECS[$s]:-0}" "${GC_USED_BOX[$s]:-0}" "$(json_str "$(gc_detail "$s")")" "$data"
    done
    printf ']}\n'
  } >"$js.tmp" && mv "$js.tmp" "$js"
  if [[ -n ${OUT:-} && -d ${OUT:-} ]]; then
    cp "$md" "$js" "$OUT/" 2>/dev/null
    tar -C "$GC_WORK" -czf "$OUT/gpu_check_logs.tar.gz" . 2>/dev/null
  fi
}
