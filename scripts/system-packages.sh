#!/usr/bin/env bash
# Idempotent: install the Debian packages Bondgate's tests and demo use, only when missing.
set -euo pipefail
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v socat >/dev/null 2>&1 || need+=(socat)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v chromium >/dev/null 2>&1 || need+=(chromium)          # browser tests (headless)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)  # validates compose.yaml
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql)  # central on PostgreSQL
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)  # `haproxy -c` checks compose's balancer config
dpkg-query -W -f='${Status}' fonts-wqy-zenhei 2>/dev/null | grep -q "ok installed" \
    || need+=(fonts-wqy-zenhei)  # Chinese names and addresses in page screenshots
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "Bondgate needs the Debian packages: ${need[*]}" >&2
    echo "Install them as root: apt-get install -y ${need[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y --no-install-recommends "${need[@]}" \
    || { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends "${need[@]}"; }
