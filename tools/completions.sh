#!/usr/bin/env bash
# Writes a binary's shell completions (bash, zsh, fish) into DIR/{bash,zsh,fish}/, as the
# packages install them.
#
#   tools/completions.sh BINARY DIR
#
# - The scripts are swift-argument-parser's (`BINARY --generate-completion-script SHELL`).
# - Bash: without the generator's #!/bin/bash (a completion file is sourced, never run), and with
#   dist/completions/bash-option-equals.bash after it: bash splits `--log-format=` at the '=',
#   and the generated function then offers every option and `help` as the value.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: tools/completions.sh BINARY DIR" >&2; exit 2; }
BINARY=$1
DIR=$2
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAME=$(basename "$BINARY")
mkdir -p "$DIR/bash" "$DIR/zsh" "$DIR/fish"

BASH_FILE="$DIR/bash/$NAME"
"$BINARY" --generate-completion-script bash | sed '1{/^#!/d}' > "$BASH_FILE"
# The generated script ends with `complete ... -F FUNCTION NAME`: wrap that function.
FUNCTION=$(sed -n 's/^complete .*-F \([^ ]*\) .*$/\1/p' "$BASH_FILE" | tail -n 1)
[ -n "$FUNCTION" ] || { echo "tools/completions.sh: no 'complete -F' line in $NAME's bash completion" >&2; exit 1; }
sed -e "s/__COMMAND_FUNCTION__/$FUNCTION/g" -e "s/__COMMAND__/$NAME/g" \
  "$ROOT/dist/completions/bash-option-equals.bash" >> "$BASH_FILE"

"$BINARY" --generate-completion-script zsh > "$DIR/zsh/_$NAME"
"$BINARY" --generate-completion-script fish > "$DIR/fish/$NAME.fish"
