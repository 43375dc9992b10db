#!/usr/bin/env bash
# Run real webhook receiver libraries on captured deliveries; exit 0 only if every receiver a
# delivery names accepted it.
#
# Usage: run.sh DELIVERY_DIR [RECEIVER ...]
#   DELIVERY_DIR holds one JSON file per delivery:
#     {"headers": {...}, "body": "<raw body>", "secret": "...",
#      "standardwebhooks_secret"?: "...", "receivers"?: ["names that must accept it"]}
#   A delivery with "receivers" is given to those receivers only (each must accept it); one
#   without is given to every receiver (or the RECEIVERS named), and a receiver that finds
#   none of its protocol's headers says n/a.
# Env: PUSHGATE_RECEIVERS  the libraries as install.sh installs them: venv/ (Python) and
#                          node_modules/ (npm)
#      FAKE_NOW=1          pin the Standard Webhooks clocks to each webhook-timestamp
# Exit status: 0 all accepted, 1 a refusal or a receiver's error, 2 usage or missing libraries.
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
DIR="${1:-}"
[ -n "$DIR" ] && [ -d "$DIR" ] || { echo "usage: $0 DELIVERY_DIR [RECEIVER ...]" >&2; exit 2; }
shift
DEPS="${PUSHGATE_RECEIVERS:-}"
PY="$DEPS/venv/bin/python"
[ -n "$DEPS" ] && [ -x "$PY" ] && [ -d "$DEPS/node_modules" ] || {
  echo "$0: no receiver libraries in PUSHGATE_RECEIVERS=$DEPS (install them with install.sh)" >&2
  exit 2
}
ALL=(py-github-webhook js-github-webhook-handler js-octokit-webhooks py-octokit-schema
     py-standardwebhooks js-standardwebhooks py-gidgetlab py-pydantic-gitlab-webhooks)
if [ $# -gt 0 ]; then CHOSEN=("$@"); else CHOSEN=("${ALL[@]}"); fi

# The programs run from a scratch copy beside the libraries: Node resolves ES modules from
# the importing file's directory upwards, whatever NODE_PATH says.
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cp -R "$HERE/receivers" "$WORK/receivers"
mkdir "$WORK/schemas"
cp "$HERE/../data/github-push-event.schema.json" "$WORK/schemas/push-event.schema.json"
ln -s "$DEPS/node_modules" "$WORK/node_modules"
R="$WORK/receivers"

cmd_for() {
  case "$1" in
    py-github-webhook)            echo "$PY $R/py_github_webhook.py" ;;
    js-github-webhook-handler)    echo "node $R/js_github_webhook_handler.cjs" ;;
    js-octokit-webhooks)          echo "node $R/js_octokit_webhooks.mjs" ;;
    py-octokit-schema)            echo "$PY $R/py_octokit_schema.py" ;;
    py-standardwebhooks)          echo "$PY $R/py_standardwebhooks.py" ;;
    js-standardwebhooks)          echo "node $R/js_standardwebhooks.mjs" ;;
    py-gidgetlab)                 echo "$PY $R/py_gidgetlab.py" ;;
    py-pydantic-gitlab-webhooks)  echo "$PY $R/py_pydantic_gitlab_webhooks.py" ;;
    *) echo "" ;;
  esac
}
for r in "${CHOSEN[@]}"; do [ -n "$(cmd_for "$r")" ] || { echo "unknown receiver: $r" >&2; exit 2; }; done

shopt -s nullglob
FILES=("$DIR"/*.json)
[ ${#FILES[@]} -gt 0 ] || { echo "no *.json deliveries in $DIR" >&2; exit 2; }

fail=0; accepted=0; DETAILS=""
for f in "${FILES[@]}"; do
  named="$("$PY" -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1])).get("receivers") or []))' "$f")" || {
    echo "$(basename "$f"): not a delivery file" >&2; exit 2; }
  if [ -n "$named" ]; then read -r -a RECEIVERS <<< "$named"; else RECEIVERS=("${CHOSEN[@]}"); fi
  line="$(basename "$f"):"
  for r in "${RECEIVERS[@]}"; do
    cmd="$(cmd_for "$r")"
    [ -n "$cmd" ] || { echo "$f names an unknown receiver: $r" >&2; exit 2; }
    out="$($cmd "$f" 2>&1)"; rc=$?
    case $rc in
      0) line+=" $r=ok"; accepted=$((accepted + 1)) ;;
      2) line+=" $r=n/a" ;;
      1) line+=" $r=REFUSED"; fail=1; DETAILS+="$(basename "$f") :: ${out}"$'\n' ;;
      *) line+=" $r=ERROR($rc)"; fail=1; DETAILS+="$(basename "$f") :: $r :: ${out}"$'\n' ;;
    esac
  done
  echo "$line"
done
if [ -n "$DETAILS" ]; then echo; echo "Refusals and errors:"; printf '%s' "$DETAILS"; fi
echo "receivers: $accepted acceptances of ${#FILES[@]} deliveries, $([ $fail -eq 0 ] && echo "no refusal" || echo "REFUSALS")"
exit $fail
