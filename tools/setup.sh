#!/usr/bin/env bash
# Sets up a development machine: system packages where missing (Debian/Ubuntu, as root), then .venv with the
# project's pinned Python packages. Safe to run again; does only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(default-jre-headless)
command -v shellcheck >/dev/null 2>&1 || need_apt+=(shellcheck) # tests/infra lints the shell scripts
if [ "${SKIP_BROWSER:-}" != "1" ]; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
  # The linking pages' Japanese, Korean and Chinese screenshots need CJK glyphs.
  [ -d /usr/share/fonts/opentype/noto ] || need_apt+=(fonts-noto-cjk)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need_apt[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install ${need_apt[*]} (Debian/Ubuntu package names)" >&2
  fi
fi

sdk_root=""
if command -v gcloud >/dev/null 2>&1; then
  sdk_root=$(gcloud info --format='value(installation.sdk_root)' 2>/dev/null || true)
fi
if [ -z "$sdk_root" ] || [ ! -f "$sdk_root/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar" ]; then
  cat >&2 <<'MSG'
setup: Google's emulators were not found. Install the google-cloud-cli packages (see README, "Emulators"):
  apt-get install google-cloud-cli google-cloud-cli-firestore-emulator google-cloud-cli-pubsub-emulator
MSG
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: Python 3.11 or newer is needed (found $("$python" --version 2>&1))" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
echo "setup: .venv ready"

# tests/infra checks infra/ against the google provider's schema, read from its prebuilt bindings on npm (pinned by
# tests/infra/provider-schema/package-lock.json); the test installs them itself when npm is here.
bindings=tests/infra/provider-schema
wanted=$(sed -n 's/.*"@cdktf\/provider-google": "\(.*\)".*/\1/p' "$bindings/package.json")
installed=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$bindings/node_modules/@cdktf/provider-google/package.json" 2>/dev/null || true)
if [ "$installed" != "$wanted" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "setup: installing the google provider's schema bindings (npm, about 30 MB)"
    (cd "$bindings" && npm ci --no-audit --no-fund --loglevel=error)
  else
    echo "setup: npm not found: tests/infra/test_provider_schema.py will skip (Debian packages nodejs, npm)" >&2
  fi
fi
