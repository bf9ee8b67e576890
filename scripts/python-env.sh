# Sourced by scripts: creates (or refreshes when tests/requirements.txt changes) the Python venv
# holding the test oracles (ONNX Runtime, onnx, numpy), and exports QB_PYTHON.
QB_VENV="${QB_VENV:-$HOME/.cache/quantbench/venv}"
req="tests/requirements.txt"
stamp="$QB_VENV/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ ! -x "$QB_VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "creating Python venv for the oracles in $QB_VENV"
  rm -rf "$QB_VENV"
  python3 -m venv "$QB_VENV"
  "$QB_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi
export QB_PYTHON="$QB_VENV/bin/python"
