# Sourced by the test scripts: installs the Debian packages the tests need on a fresh
# machine, rather than relying on what the host happens to have. `apt-get update` runs only
# when the first install fails (package lists missing or stale).

# install_debian_package PACKAGE WHY: installs PACKAGE, or stops the run saying WHY it was
# needed.
install_debian_package() {
    { apt-get install -y "$1" >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y "$1" >/dev/null; }; } || {
        echo "apt-get could not install $1 ($2)" >&2
        exit 1
    }
}

# need_command COMMAND PACKAGE: installs Debian's PACKAGE when COMMAND is not on the PATH.
need_command() {
    command -v "$1" >/dev/null || install_debian_package "$2" "the tests run \`$1\`"
}
