#!/usr/bin/env bash
# Replays deploy/Dockerfile where no container builder works: copies the same
# build context (the Dockerfile's COPY sources) into a clean directory, runs the
# same install script into a fresh venv, then, like `docker run`, with a bare
# environment, as a non-root user when started as root, and with libGL hidden
# when the host has it (a private mount namespace), runs `ad-assets --help` and
# the demo brands.
#
# usage: deploy/replay_image.sh [WORK_DIR]     (default: a new temp dir; kept for inspection)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d /tmp/ad-assets-image.XXXXXX)}
mkdir -p "$work" && chmod 755 "$work"
ctx=$work/src venv=$work/venv home=$work/home
mkdir -p "$ctx" "$home"

# 1. The build context: exactly the sources of the Dockerfile's COPY lines, at
#    the same relative paths (the Dockerfile mirrors the repository layout).
grep -E '^COPY ' "$repo/deploy/Dockerfile" | while read -r _ args; do
  set -- $args
  while [ $# -gt 1 ]; do
    mkdir -p "$ctx/$(dirname "$1")"
    cp -R "$repo/$1" "$ctx/$1"
    shift
  done
done
find "$ctx" -name __pycache__ -prune -exec rm -rf {} +

# 2. The Dockerfile's RUN step, on a system Python (the image's is
#    /usr/local/bin/python3.11) so that a non-root user can run the venv.
base=""
for candidate in /usr/local/bin/python3.11 /usr/bin/python3.11 /usr/local/bin/python3.12 /usr/bin/python3.12; do
  [ -x "$candidate" ] && { base=$candidate; break; }
done
(cd "$ctx" && PYTHON="${base:-python3}" deploy/install_image.sh "$venv")

# 3. The container's environment: only what the Dockerfile sets.
mkdir -p "$home/dagster_home" "$home/ad_assets"
cp "$ctx/dagster.yaml" "$home/dagster_home/dagster.yaml"
run_env=(env -i PATH="$venv/bin:/usr/bin:/bin" HOME="$home" PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
         DAGSTER_HOME="$home/dagster_home" AD_ASSETS_HOME="$home/ad_assets" LANG=C.UTF-8)
as_user=()
if [ "$(id -u)" = 0 ] && [ -n "$base" ]; then
  chown -R nobody "$home"
  as_user=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups)
fi
hide_gl=""
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
  for lib in $(ldconfig -p | awk '/libGL\.so|libX11\.so/ {print $NF}'); do
    hide_gl+="mount --bind /dev/null $(readlink -f "$lib"); "
  done
fi
inner="cd '$home' && ${as_user[*]} ${run_env[*]} ad-assets --help && ${as_user[*]} ${run_env[*]} ad-assets demo"
echo "replay: running in $work as $([ ${#as_user[@]} -gt 0 ] && echo nobody || id -un)${hide_gl:+, libGL and libX11 hidden}"
if [ -n "$hide_gl" ]; then
  unshare -m sh -c "$hide_gl $inner"
else
  sh -c "$inner"
fi
echo "replay: ok ($work)"
