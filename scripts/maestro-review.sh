#!/usr/bin/env bash
# The GitHub Action's script (action.yml runs it): check and review the pull request.
#
# Writes the Markdown review to $GITHUB_STEP_SUMMARY (and to $MAESTRO_COMMENT_FILE when set,
# for a pull-request comment), prints GitHub annotations for every problem, and exits 1 when
# check or review found an error. INPUT_BASE names the branch the pull request goes into
# (the action passes github.base_ref); the review fetches it, and deepens a shallow clone
# until the merge base is found. MAESTRO is the command to run (default: maestro).
set -uo pipefail

maestro=(${MAESTRO:-maestro})
base=(${INPUT_BASE:+--base "$INPUT_BASE"})
status=0

"${maestro[@]}" check --format github || status=1
"${maestro[@]}" review "${base[@]}" --format github || status=1
markdown=$("${maestro[@]}" review "${base[@]}" --no-fetch --format markdown)
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  printf '%s\n' "$markdown" >> "$GITHUB_STEP_SUMMARY"
fi
if [ -n "${MAESTRO_COMMENT_FILE:-}" ]; then
  printf '%s\n' "$markdown" > "$MAESTRO_COMMENT_FILE"
fi
exit "$status"
