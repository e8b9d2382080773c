# Sourced by the device scripts: Node and the bundled CLI from .devnode (test/bench/device/pack.sh),
# the worker on the device's own python3, and the tree's root as a git repository (it arrives without .git).
[ -x /tmp/node ] || { xz -dc .devnode/node.xz > /tmp/node && chmod +x /tmp/node; }
export PATH=/tmp:$PATH
tar -xJf .devnode/devpack.tar.xz
export LLMKIT_PYTHON=${LLMKIT_PYTHON:-$(command -v python3)} LLMKIT_HOME=${LLMKIT_HOME:-/tmp/llmkit-home}
cli="node .devpack/llmkit.js"
[ -e .git ] || git init -q
# The shared texts do not travel with the tree; pack.sh puts Tiny Shakespeare beside Node.
mkdir -p ../shared/data && cp -n .devnode/tinyshakespeare.txt ../shared/data/ 2>/dev/null
