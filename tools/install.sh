#!/bin/sh
# install.sh NAME:TAG PLUGIN_DIR [SETTING=VALUE...]: create the plugin built
# in PLUGIN_DIR on this Docker host under NAME:TAG, with the settings given,
# and enable it (`make install`). A plugin already installed under that name
# is replaced, and this says so: its settings are not carried over, and
# Docker refuses while networks of it exist (remove them, or use `docker
# plugin upgrade`, see docs/upgrade.md). DOCKER names the docker command.
set -eu
ref=${1:?usage: install.sh NAME:TAG PLUGIN_DIR [SETTING=VALUE...]}
dir=${2:?usage: install.sh NAME:TAG PLUGIN_DIR [SETTING=VALUE...]}
shift 2
docker=${DOCKER:-docker}
for setting in "$@"; do
	case $setting in
	*=*) ;;
	*) echo "install: $setting: want SETTING=VALUE" >&2; exit 1 ;;
	esac
done
if $docker plugin inspect "$ref" >/dev/null 2>&1; then
	echo "install: replacing the installed $ref ($($docker plugin inspect -f 'ID {{.Id}}, enabled {{.Enabled}}' "$ref")); its settings are not kept"
	$docker plugin disable "$ref" >/dev/null 2>&1 || true
	$docker plugin rm "$ref" >/dev/null
fi
$docker plugin create "$ref" "$dir" >/dev/null
if [ $# -gt 0 ]; then
	$docker plugin set "$ref" "$@"
fi
$docker plugin enable "$ref" >/dev/null
echo "installed and enabled $ref${*:+ with $*}"
