#!/usr/bin/env bash
# install_deps.sh: installs the Debian packages that aclip's build and tests need. Idempotent: when
# everything is present it installs nothing and says so (python3-matplotlib is for tools/plot_metrics.py).
# Usage: tools/install_deps.sh [--with-reference]
#   --with-reference  also installs python3-torch and python3-numpy, needed only to regenerate the
#                     PyTorch fixtures (tools/reference/) and for the side-by-side benchmark.
set -euo pipefail

packages=(build-essential cmake ninja-build ccache libopenblas-openmp-dev doctest-dev clang-format libicu-dev
          zlib1g-dev libjpeg62-turbo-dev libstb-dev libzip-dev dataset-fashion-mnist
          libopenmpi-dev openmpi-bin python3-matplotlib)
if [[ "${1:-}" == "--with-reference" ]]; then
    packages+=(python3-torch python3-numpy python3-torchvision python3-pil)
fi

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install_deps: all ${#packages[@]} packages are installed"
    exit 0
fi

echo "install_deps: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "install_deps: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install_deps: done"
