# Sourced by fetch.sh and build-module.sh: one project-local apt state for
# both (the host's apt configuration is never touched).
#
# apt_env APT_DIR ARCHS: writes the sources (the host's Debian mirror and
# suites for ARCHS, e.g. "arm64" or "arm64,amd64", signed by the host's
# Debian archive keyring) and an apt.conf that keeps every state and cache
# under APT_DIR, and exports APT_CONFIG.
apt_env() {
    # apt reads Dir:: paths relative to its own directories: make it absolute.
    mkdir -p "$1"
    _apt=$(cd "$1" && pwd)
    _archs=$2
    _host=$(dpkg --print-architecture)
    _keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    [ -f "$_keyring" ] || { echo "apt-env: $_keyring missing (apt-get install debian-archive-keyring)" >&2; exit 1; }
    mkdir -p "$_apt/state/lists/partial" "$_apt/cache/archives/partial" \
             "$_apt/etc/sources.list.d" "$_apt/etc/preferences.d"
    cat > "$_apt/etc/sources.list" <<SRC
deb [arch=$_archs signed-by=$_keyring] http://deb.debian.org/debian bookworm main
deb [arch=$_archs signed-by=$_keyring] http://deb.debian.org/debian bookworm-updates main
deb [arch=$_archs signed-by=$_keyring] http://deb.debian.org/debian-security bookworm-security main
SRC
    cat > "$_apt/apt.conf" <<CONF
APT::Architecture "$_host";
APT::Architectures { "$_host"; "arm64"; };
Dir::State "$_apt/state";
Dir::State::status "$_apt/state/status";
Dir::Cache "$_apt/cache";
Dir::Etc::sourcelist "$_apt/etc/sources.list";
Dir::Etc::sourceparts "$_apt/etc/sources.list.d";
Dir::Etc::preferencesparts "$_apt/etc/preferences.d";
Acquire::Languages "none";
Acquire::IndexTargets::deb::DEP-11::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled "false";
CONF
    touch "$_apt/state/status"
    export APT_CONFIG="$_apt/apt.conf"
}

# apt_update_for APT_DIR ARCH...: apt-get update unless package lists for
# every ARCH are already there.
apt_update_for() {
    _apt=$1
    shift
    for _a in "$@"; do
        if ! ls "$_apt/state/lists/"*"_binary-${_a}_Packages"* >/dev/null 2>&1; then
            echo "apt-env: apt-get update (project-local state in $_apt)"
            apt-get -q update
            return
        fi
    done
}
