# Sourced by the scripts: keep ultralytics offline and out of the home directory, so nothing is
# downloaded or pip-installed behind our back at run time.
export YOLO_OFFLINE="${YOLO_OFFLINE:-1}"
export YOLO_AUTOINSTALL="${YOLO_AUTOINSTALL:-0}"
# .pt files unpickled only through ultralytics' allow-list (the daemon insists on it anyway).
export ULTRALYTICS_SAFE_LOAD=1
export YOLO_CONFIG_DIR="${YOLO_CONFIG_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/monitor/ultralytics}"
mkdir -p "$YOLO_CONFIG_DIR"
