#!/usr/bin/env bash
# Install (or upgrade, or remove) baton on a gateway: Raspberry Pi OS, Ubuntu, Debian or
# Jetson Linux, arm64 or x86-64. Run `install.sh --help` for what it does.
set -euo pipefail

readonly PROG="install.sh"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"
readonly SCRIPT_DIR REPO_DIR

# Where things go on the target (final paths: with --root they are written under DIR
# but name these paths, so an OS image built that way runs as installed).
readonly PREFIX="/opt/baton"
readonly VENV="$PREFIX/venv"
readonly ETC="/etc/baton"
readonly STATE="/var/lib/baton"
readonly UNIT_DIR="/etc/systemd/system"
readonly SYSUSERS="/usr/lib/sysusers.d/baton.conf"
readonly TMPFILES="/usr/lib/tmpfiles.d/baton.conf"
readonly SERVICE_USER="baton"
readonly UNITS=(baton-nats.service baton-edge.service)
readonly MIN_PYTHON="3.10"

usage() {
	cat <<EOF
Usage: $PROG [OPTIONS]

Install baton on this gateway, or upgrade it in place. Running it again keeps the
state (/var/lib/baton) and your edits to /etc/baton/edge.toml; a flag given again
changes only what it names, and flags left out keep their previous values.

What it does:
  - a Python venv in $VENV with baton (and nats-server, from its wheel)
  - /etc/baton/edge.toml       the edge daemon's settings (written once, yours to edit)
  - /etc/baton/leaf.conf       the leaf nats-server: JetStream domain edge-<gateway>
                               (fsync always), MQTT listener, TLS link to the hub;
                               with gateway.conf (from these flags) and creds.conf
  - systemd units baton-nats and baton-edge (restart always, watchdog, hardened,
    run as the unprivileged user '$SERVICE_USER'), enabled and started; baton-nats
    creates the gateway's UPLINK stream before the leaf takes sensor connections

Gateway:
  --creds FILE         the gateway's credentials, from
                       \`baton creds server-config leaf GW -o FILE\` (required the first
                       time; names the gateway). Installed as /etc/baton/creds.conf.
  --hub URL[,URL...]   the hub's leaf node URL(s), e.g. tls://hub.example.com:7422
                       (required the first time)
  --hub-ca FILE        CA certificate the hub's TLS certificate must chain to
                       (default: the system's trusted CAs)
  --gateway ID         the gateway id; must match the credentials file
  --mqtt-listen ADDR   sensors' MQTT listener (default 0.0.0.0:1883)
  --nats-listen ADDR   NATS client listener (default 127.0.0.1:4222; 0.0.0.0:4222
                       lets devices on the LAN speak NATS, with their own logins)
  --memory-max SIZE    the edge daemon's memory limit (default 1G, 80% with --llm)

Software:
  --source PATH|SPEC   what to pip install (default: this checkout, $REPO_DIR)
  --llm                add the local LLM (llama-cpp-python; compiled, with CUDA on a
                       Jetson: CMAKE_ARGS=-DGGML_CUDA=on)
  --python PATH        interpreter for the venv (default python3; needs $MIN_PYTHON+)
  --no-pip             do not create or upgrade the venv (tests, pre-built images)
  --no-apt             do not apt-get install missing system packages

Modes:
  --root DIR           install into DIR instead of / (image builds, tests): no user is
                       created, no systemctl is run, files are not chown'ed (the
                       shipped sysusers.d and tmpfiles.d entries do it at first boot)
  --dry-run            print what would change, change nothing
  --uninstall          remove baton; keeps state, config and secrets, and says where
  --purge              with --uninstall: also delete those and the '$SERVICE_USER' user
  -h, --help           this text

Example (on the gateway, from a baton checkout):
  sudo deploy/edge/install.sh --creds gw1.creds --hub tls://hub.example.com:7422 \\
      --hub-ca hub-ca.pem
EOF
}

# -- messages ---------------------------------------------------------------------------

say() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

# -- options ----------------------------------------------------------------------------

ROOT=""
SOURCE=""
GATEWAY=""
HUB_URLS=""
HUB_CA=""
CREDS_FILE=""
MQTT_LISTEN=""
NATS_LISTEN=""
MEMORY_MAX=""
WITH_LLM=""
PYTHON="python3"
DO_PIP=1
DO_APT=1
SAVED_SOURCE=""
DRY_RUN=0
UNINSTALL=0
PURGE=0

need_value() {
	[[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"
}

parse_args() {
	while [[ $# -gt 0 ]]; do
		case $1 in
		--root) need_value "$@"; ROOT=$2; shift ;;
		--source) need_value "$@"; SOURCE=$2; shift ;;
		--gateway) need_value "$@"; GATEWAY=$2; shift ;;
		--hub) need_value "$@"; HUB_URLS=$2; shift ;;
		--hub-ca) need_value "$@"; HUB_CA=$2; shift ;;
		--creds) need_value "$@"; CREDS_FILE=$2; shift ;;
		--mqtt-listen) need_value "$@"; MQTT_LISTEN=$2; shift ;;
		--nats-listen) need_value "$@"; NATS_LISTEN=$2; shift ;;
		--memory-max) need_value "$@"; MEMORY_MAX=$2; shift ;;
		--python) need_value "$@"; PYTHON=$2; shift ;;
		--llm) WITH_LLM=1 ;;
		--no-pip) DO_PIP=0 ;;
		--no-apt) DO_APT=0 ;;
		--dry-run) DRY_RUN=1 ;;
		--uninstall) UNINSTALL=1 ;;
		--purge) PURGE=1 ;;
		-h | --help) usage; exit 0 ;;
		*) die "unknown option '$1' (see --help)" ;;
		esac
		shift
	done
	if [[ $PURGE == 1 && $UNINSTALL == 0 ]]; then
		die "--purge goes with --uninstall"
	fi
	if [[ -n $ROOT ]]; then
		[[ $DRY_RUN == 1 || -d $ROOT ]] || mkdir -p "$ROOT"
		ROOT="$(cd "$ROOT" 2>/dev/null && pwd || printf '%s' "$ROOT")"
	fi
}

# -- doing (or, with --dry-run, saying) -------------------------------------------------

CHANGES=0

# A target path under --root.
at() { printf '%s%s' "$ROOT" "$1"; }

live() { [[ -z $ROOT ]]; }

run() {
	if [[ $DRY_RUN == 1 ]]; then
		say "would run: $(printf '%q ' "$@")"
		return 0
	fi
	"$@"
}

make_dir() { # PATH MODE
	local dir
	dir="$(at "$1")"
	[[ -d $dir ]] && return 0
	if [[ $DRY_RUN == 1 ]]; then
		say "would create $1/"
		return 0
	fi
	mkdir -p "$dir"
	chmod "$2" "$dir"
	CHANGES=$((CHANGES + 1))
}

# Install stdin as PATH with MODE (and OWNER:GROUP on a live system) when it differs.
put_file() { # PATH MODE [OWNER:GROUP]
	local path=$1 mode=$2 owner=${3:-} dest tmp
	dest="$(at "$path")"
	tmp="$(mktemp)"
	cat >"$tmp"
	if [[ -f $dest ]] && cmp -s "$tmp" "$dest" && [[ $(stat -c '%a' "$dest") == "${mode#0}" ]]; then
		rm -f "$tmp"
		return 0
	fi
	if [[ $DRY_RUN == 1 ]]; then
		say "would write $path (mode $mode)"
		rm -f "$tmp"
		return 0
	fi
	mkdir -p "$(dirname "$dest")"
	# install(1) creates the file with its final mode: a secret is never readable
	# by others, not even for a moment.
	if [[ -n $owner ]] && live; then
		install -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$tmp" "$dest"
	else
		install -m "$mode" "$tmp" "$dest"
	fi
	rm -f "$tmp"
	say "wrote $path"
	CHANGES=$((CHANGES + 1))
}

remove_path() { # PATH
	local target
	target="$(at "$1")"
	[[ -e $target || -L $target ]] || return 0
	if [[ $DRY_RUN == 1 ]]; then
		say "would remove $1"
		return 0
	fi
	rm -rf -- "$target"
	say "removed $1"
}

have_systemd() {
	live && command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]
}

# -- facts about the machine ------------------------------------------------------------

is_jetson() { [[ -f "$(at /etc/nv_tegra_release)" ]]; }

check_platform() {
	local arch
	arch="$(uname -m)"
	case $arch in
	aarch64 | arm64 | x86_64 | amd64) ;;
	*) warn "untested architecture $arch (baton's wheels cover arm64 and x86-64)" ;;
	esac
	if live && [[ ! -f /etc/debian_version ]]; then
		warn "not a Debian-based system: package names in this script may not apply"
	fi
	if live && [[ $DRY_RUN == 0 && $EUID -ne 0 ]]; then
		die "run as root (sudo), or pass --root DIR or --dry-run"
	fi
}

check_python() {
	command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found; install python3 ($MIN_PYTHON+) or pass --python"
	"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
		die "$PYTHON is $("$PYTHON" -V 2>&1); baton needs Python $MIN_PYTHON+ (on JetPack 5, install python3.10 and pass --python /usr/bin/python3.10)"
}

# -- remembered settings ----------------------------------------------------------------

readonly SETTINGS="$ETC/install.env"

load_settings() {
	local file key value
	file="$(at "$SETTINGS")"
	[[ -f $file ]] || return 0
	# KEY=VALUE lines we wrote ourselves; read, never sourced (no code runs from /etc).
	while IFS='=' read -r key value; do
		case $key in
		GATEWAY) [[ -n $GATEWAY ]] || GATEWAY=$value ;;
		HUB_URLS) [[ -n $HUB_URLS ]] || HUB_URLS=$value ;;
		MQTT_LISTEN) [[ -n $MQTT_LISTEN ]] || MQTT_LISTEN=$value ;;
		NATS_LISTEN) [[ -n $NATS_LISTEN ]] || NATS_LISTEN=$value ;;
		MEMORY_MAX) [[ -n $MEMORY_MAX ]] || MEMORY_MAX=$value ;;
		WITH_LLM) [[ -n $WITH_LLM ]] || WITH_LLM=$value ;;
		SOURCE) [[ -n $SOURCE ]] || SOURCE=$value ;; # only ever an explicit --source
		esac
	done <"$file"
}

save_settings() {
	put_file "$SETTINGS" 0644 <<EOF
GATEWAY=$GATEWAY
HUB_URLS=$HUB_URLS
MQTT_LISTEN=$MQTT_LISTEN
NATS_LISTEN=$NATS_LISTEN
MEMORY_MAX=$MEMORY_MAX
WITH_LLM=$WITH_LLM
SOURCE=$SAVED_SOURCE
EOF
}

apply_defaults() {
	# Remember an explicit --source; the default is whichever checkout runs this script,
	# so a fresh `git pull` elsewhere upgrades from there.
	SAVED_SOURCE=$SOURCE
	SOURCE=${SOURCE:-$REPO_DIR}
	MQTT_LISTEN=${MQTT_LISTEN:-0.0.0.0:1883}
	NATS_LISTEN=${NATS_LISTEN:-127.0.0.1:4222}
	WITH_LLM=${WITH_LLM:-0}
	if [[ -z $MEMORY_MAX ]]; then
		if [[ $WITH_LLM == 1 ]]; then MEMORY_MAX="80%"; else MEMORY_MAX="1G"; fi
	fi
}

# -- credentials ------------------------------------------------------------------------

readonly CREDS_MARKER="# baton-gateway: "

creds_gateway() { # FILE -> the gateway id on its first line
	local first
	IFS= read -r first <"$1" || true
	[[ $first == "$CREDS_MARKER"* ]] || die "$1 is not a baton gateway credentials file (make one with: baton creds server-config leaf GW -o FILE)"
	printf '%s' "${first#"$CREDS_MARKER"}"
}

creds_value() { # FILE VAR -> the quoted value of `VAR: "..."`
	sed -n "s/^$2: \"\\([A-Za-z0-9_-]*\\)\"\$/\\1/p" "$1"
}

resolve_gateway() {
	local installed from_creds
	installed="$(at "$ETC/creds.conf")"
	if [[ -n $CREDS_FILE ]]; then
		[[ -r $CREDS_FILE ]] || die "cannot read --creds $CREDS_FILE"
		from_creds="$(creds_gateway "$CREDS_FILE")"
	elif [[ -f $installed ]]; then
		from_creds="$(creds_gateway "$installed")"
	else
		die "the first install needs --creds FILE (baton creds server-config leaf GW -o FILE)"
	fi
	if [[ -n $GATEWAY && $GATEWAY != "$from_creds" ]]; then
		[[ -n $CREDS_FILE ]] || die "--gateway $GATEWAY differs from the installed credentials ($from_creds); pass that gateway's --creds too"
		die "--gateway $GATEWAY differs from the credentials file ($from_creds)"
	fi
	GATEWAY=$from_creds
	[[ $GATEWAY =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$ ]] || die "invalid gateway id '$GATEWAY'"
	[[ -n $HUB_URLS ]] || die "the first install needs --hub URL (the hub's leaf node URL)"
}

# -- steps ------------------------------------------------------------------------------

ensure_user() {
	live || return 0
	id -u "$SERVICE_USER" >/dev/null 2>&1 && return 0
	run useradd --system --user-group --home-dir "$STATE" --no-create-home \
		--shell /usr/sbin/nologin --comment "baton gateway services" "$SERVICE_USER"
	CHANGES=$((CHANGES + 1))
}

ensure_apt_packages() {
	[[ $DO_PIP == 1 && $DO_APT == 1 ]] && live && command -v apt-get >/dev/null 2>&1 || return 0
	local wanted=(python3-venv) missing=() pkg
	[[ $WITH_LLM == 1 ]] && wanted+=(build-essential cmake python3-dev)
	for pkg in "${wanted[@]}"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
	done
	[[ ${#missing[@]} -eq 0 ]] && return 0
	say "installing system packages: ${missing[*]}"
	# A fresh image may have empty package lists.
	run apt-get update -qq
	run apt-get install -y --no-install-recommends "${missing[@]}"
}

pip_spec() {
	local spec=$SOURCE
	[[ $WITH_LLM == 1 ]] || { printf '%s' "$spec"; return; }
	if [[ -e $spec ]]; then
		printf '%s[llm]' "$spec"
	else # a requirement like baton==0.2.0: the extra goes after the name
		printf '%s' "$spec" | sed -E 's/^([A-Za-z0-9._-]+)/\1[llm]/'
	fi
}

install_venv() {
	if [[ $DO_PIP == 0 ]]; then
		say "skipping the venv and pip install (--no-pip)"
		return 0
	fi
	local venv
	venv="$(at "$VENV")"
	[[ -x $venv/bin/python ]] || run "$PYTHON" -m venv "$venv"
	if [[ $WITH_LLM == 1 ]] && is_jetson; then
		# llama.cpp's CUDA backend, built against JetPack's CUDA toolkit.
		say "Jetson detected: building llama.cpp with CUDA (takes a while)"
		export CMAKE_ARGS="-DGGML_CUDA=on" FORCE_CMAKE=1
		[[ -d /usr/local/cuda/bin ]] && export PATH="/usr/local/cuda/bin:$PATH" CUDACXX=/usr/local/cuda/bin/nvcc
	fi
	say "pip install --upgrade $(pip_spec)"
	run "$venv/bin/pip" install --quiet --upgrade "$(pip_spec)"
	CHANGES=$((CHANGES + 1))
}

install_layout() {
	make_dir "$PREFIX" 0755
	make_dir "$PREFIX/share" 0755
	make_dir "$ETC" 0755
	make_dir "$STATE" 0755
	make_dir "$STATE/nats" 0750
	make_dir "$STATE/edge" 0750
	if live && [[ $DRY_RUN == 0 ]]; then
		chown "$SERVICE_USER:$SERVICE_USER" "$STATE/nats" "$STATE/edge"
	fi
	put_file "$PREFIX/share/README.md" 0644 <"$REPO_DIR/deploy/README.md"
	put_file "$PREFIX/share/edge.example.toml" 0644 <"$REPO_DIR/edge/edge.example.toml"
}

# host:port of a listener as a client reaches it locally.
local_address() {
	local host=${1%:*} port=${1##*:}
	[[ $host == 0.0.0.0 || $host == "[::]" || -z $host ]] && host=127.0.0.1
	printf '%s:%s' "$host" "$port"
}

conf_list() { # a,b -> ["a", "b"]
	local out="" item
	local -a items
	IFS=',' read -r -a items <<<"$1"
	for item in "${items[@]}"; do
		out+="${out:+, }\"$item\""
	done
	printf '[%s]' "$out"
}

install_nats_config() {
	put_file "$ETC/leaf.conf" 0644 <"$REPO_DIR/deploy/nats/leaf.conf"
	if [[ -n $CREDS_FILE ]]; then
		# Owned by the user nats-server runs as, readable by nobody else.
		put_file "$ETC/creds.conf" 0600 "$SERVICE_USER:$SERVICE_USER" <"$CREDS_FILE"
	fi
	local tls="{ timeout: 5 }"
	if [[ -n $HUB_CA ]]; then
		[[ -r $HUB_CA ]] || die "cannot read --hub-ca $HUB_CA"
		put_file "$ETC/hub-ca.pem" 0644 <"$HUB_CA"
	fi
	if [[ -f "$(at "$ETC/hub-ca.pem")" || -n $HUB_CA ]]; then
		tls="{ ca_file: \"$ETC/hub-ca.pem\", timeout: 5 }"
	fi
	put_file "$ETC/gateway.conf" 0644 <<EOF
# Written by baton's install.sh from its flags; run it again to change them (edits
# here are overwritten). Read by leaf.conf, next to this file.
BATON_SERVER_NAME: "edge-$GATEWAY"
BATON_DOMAIN: "edge-$GATEWAY"
BATON_STORE_DIR: "$STATE/nats"
BATON_CLIENT_LISTEN: "$NATS_LISTEN"
BATON_MONITOR_LISTEN: "127.0.0.1:8222"
BATON_MQTT_LISTEN: "$MQTT_LISTEN"
BATON_HUB_URLS: $(conf_list "$HUB_URLS")
BATON_HUB_TLS: $tls
EOF
}

install_edge_config() {
	local toml password
	toml="$(at "$ETC/edge.toml")"
	if [[ -f $toml ]]; then
		# Yours to edit: only a changed gateway id is carried over.
		if ! grep -q "^gateway = \"$GATEWAY\"" "$toml"; then
			put_file "$ETC/edge.toml" 0644 < <(sed "s/^gateway = .*/gateway = \"$GATEWAY\"/" "$toml")
		fi
	else
		put_file "$ETC/edge.toml" 0644 <<EOF
# Settings of the edge daemon (baton-edge.service), written once by install.sh and
# yours to edit: a rerun only updates \`gateway\` when --gateway changes it. Every
# setting with its default: $PREFIX/share/edge.example.toml. Check an edit with
#   sudo -u $SERVICE_USER $VENV/bin/baton edge check-config $ETC/edge.toml
# The daemon's leaf URL and password come from $ETC/edge.env (BATON_EDGE_NATS_URL).
gateway = "$GATEWAY"
nats_url = "nats://$(local_address "$NATS_LISTEN")"
state_dir = "$STATE/edge"
EOF
	fi
	password="$(creds_value "${CREDS_FILE:-$(at "$ETC/creds.conf")}" BATON_EDGE_PASSWORD)"
	[[ -n $password ]] || die "no BATON_EDGE_PASSWORD in the credentials file"
	put_file "$ETC/edge.env" 0600 "root:root" <<EOF
# baton-edge.service environment. SECRET: the edge daemon's login on its leaf.
BATON_EDGE_NATS_URL=nats://edge:$password@$(local_address "$NATS_LISTEN")
EOF
}

render_unit() { # TEMPLATE
	local device_access="PrivateDevices=yes"
	if [[ $WITH_LLM == 1 ]] && is_jetson; then
		# CUDA on a Jetson opens /dev/nvhost-* and /dev/nvmap, owned by group video.
		device_access="SupplementaryGroups=video"
	fi
	sed -e "s|@PREFIX@|$PREFIX|g" \
		-e "s|@EDGE_MEMORY_MAX@|$MEMORY_MAX|g" \
		-e "s|@NATS_MEMORY_MAX@|512M|g" \
		-e "s|@NATS_GOMEMLIMIT@|400MiB|g" \
		-e "s|@DEVICE_ACCESS@|$device_access|g" \
		"$SCRIPT_DIR/systemd/$1.in"
}

install_units() {
	local unit
	for unit in "${UNITS[@]}"; do
		# Process substitution, not a pipe: put_file must run in this shell to count.
		put_file "$UNIT_DIR/$unit" 0644 < <(render_unit "$unit")
	done
	put_file "$SYSUSERS" 0644 <"$SCRIPT_DIR/systemd/baton.sysusers"
	put_file "$TMPFILES" 0644 <"$SCRIPT_DIR/systemd/baton.tmpfiles"
}

start_services() {
	if ! have_systemd; then
		live && warn "systemd is not running here: start the services yourself, or reboot into systemd"
		return 0
	fi
	run systemctl daemon-reload
	run systemctl enable "${UNITS[@]}"
	if [[ $CHANGES -gt 0 ]]; then
		run systemctl restart "${UNITS[@]}"
	else
		run systemctl start "${UNITS[@]}"
	fi
}

stamp() {
	local version
	version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO_DIR/pyproject.toml" | head -n 1)"
	if [[ $DO_PIP == 1 && $DRY_RUN == 0 && -x "$(at "$VENV")/bin/python" ]]; then
		version="$("$(at "$VENV")/bin/python" -c 'from importlib.metadata import version; print(version("baton"))')"
	fi
	# The one file every run rewrites: what is installed, from where, and when.
	put_file "$PREFIX/INSTALLED" 0644 <<EOF
version=$version
source=$SOURCE
llm=$WITH_LLM
installed_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF
}

do_install() {
	check_platform
	load_settings
	resolve_gateway
	apply_defaults
	[[ $DO_PIP == 0 ]] || check_python
	say "installing baton for gateway $GATEWAY into ${ROOT:-/}"
	ensure_user
	ensure_apt_packages
	install_layout
	install_venv
	install_nats_config
	install_edge_config
	install_units
	save_settings
	local changed=$CHANGES
	start_services
	stamp
	if [[ $DRY_RUN == 1 ]]; then
		say "dry run: nothing was changed"
	elif [[ $changed -eq 0 ]]; then
		say "already up to date (nothing changed but $PREFIX/INSTALLED)"
	else
		say "done: $changed change(s). Logs: journalctl -u baton-nats -u baton-edge -f"
	fi
}

# -- uninstall --------------------------------------------------------------------------

do_uninstall() {
	if live && [[ $DRY_RUN == 0 && $EUID -ne 0 ]]; then
		die "run as root (sudo), or pass --root DIR or --dry-run"
	fi
	local unit path
	if have_systemd; then
		run systemctl disable --now "${UNITS[@]}" || true
	fi
	for unit in "${UNITS[@]}"; do
		remove_path "$UNIT_DIR/$unit"
	done
	have_systemd && run systemctl daemon-reload
	for path in "$PREFIX" "$SYSUSERS" "$TMPFILES" "$ETC/leaf.conf" "$ETC/gateway.conf" "$SETTINGS"; do
		remove_path "$path"
	done
	local kept=("$ETC/edge.toml" "$ETC/creds.conf" "$ETC/edge.env" "$ETC/hub-ca.pem" "$STATE")
	if [[ $PURGE == 1 ]]; then
		for path in "${kept[@]}" "$ETC"; do
			remove_path "$path"
		done
		if live && id -u "$SERVICE_USER" >/dev/null 2>&1; then
			run userdel "$SERVICE_USER"
		fi
		say "purged: nothing of baton is left"
		return 0
	fi
	say "uninstalled. Kept (remove by hand, or run again with --uninstall --purge):"
	for path in "${kept[@]}"; do
		[[ -e "$(at "$path")" ]] || continue
		case $path in
		"$STATE") say "  $path  data: the leaf's JetStream store (readings not yet forwarded) and the daemon's SQLite" ;;
		*.env | */creds.conf) say "  $path  secrets" ;;
		*) say "  $path  configuration" ;;
		esac
	done
	live && id -u "$SERVICE_USER" >/dev/null 2>&1 && say "  user $SERVICE_USER"
	return 0
}

main() {
	parse_args "$@"
	if [[ $UNINSTALL == 1 ]]; then
		do_uninstall
	else
		do_install
	fi
}

# One line, so bash (which reads a script as it runs) never reads past it: a `git pull`
# that rewrites this file during an install cannot make it run half a line.
main "$@"; exit
