#!/usr/bin/env bash
# quickstart.sh: from a fresh Debian machine to a trained A-CLIP model, on the CPU, in under 10 minutes
# on 2 cores: installs what is missing, builds, renders the embedded synthetic dataset, trains with
# configs/quickstart.ini, and prints zero-shot top-1 and retrieval R@1 (online and EMA weights).
# Extra arguments go to aclip_train, e.g. tools/quickstart.sh aclip.mask=none aclip.views=1 aclip.ssl=false
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DACLIP_CUDA=AUTO > /dev/null
cmake --build build -j "$(nproc)" --target aclip_train aclip_make_synthetic
if [[ ! -f datasets/synthetic/train/sizes.json ]]; then
    build/aclip_make_synthetic --out datasets/synthetic --train 10000 --val 500 --zeroshot 960 --retrieval 500
fi
# A quickstart starts over: its folder (runs/quickstart, or runs/quickstart-ARGS with extra arguments, so
# that the plain-CLIP run does not replace the A-CLIP one) is emptied first, unless the arguments name a
# checkpoint.dir of their own or resume (aclip_train refuses a fresh run beside an earlier one's checkpoints).
args=("$@")
if [[ " $* " != *" checkpoint.dir="* && " $* " != *" --resume "* ]]; then
    run=runs/quickstart
    (($# > 0)) && run+="-$(printf '%s-' "$@" | tr -c 'A-Za-z0-9.-' '_' | sed 's/-$//')"
    [[ -d "$run" ]] && echo "tools/quickstart.sh: starting over in $run (the earlier run there removed)"
    rm -rf "$run"
    args+=("checkpoint.dir=$run")
fi
build/aclip_train configs/quickstart.ini "${args[@]}" | grep -v '^[a-z_]* = \|^\[\|^# resolved\|^$'
echo "chance level: zero-shot top-1 2.1% (48 classes), retrieval R@1 0.2% (500 images)"
