#!/bin/sh
# login_profile.sh ROOTFS: Debian's login files without the programs they start for nothing.
#
# Every command of a sandbox runs in a login shell (`bash -l -c`), and under gVisor each fork and exec costs
# tens of milliseconds. What a shell shows stays the same:
# - /etc/profile asks `id -u` (twice) for root's PATH and prompt: `[ -O / ]` (is the effective user the
#   owner of /, root) answers within the shell, bash or sh (dash) alike, whatever the environment holds
#   (bash takes an EUID from the environment as its own).
# - root's ~/.profile runs `mesg n` and ~/.bash_logout (of /etc/skel, so of every user made after) runs
#   `clear_console`: both act on a terminal only, so they run only when there is one.
# Each line is replaced whole and must be there exactly once: a Debian that words them otherwise fails the
# build instead of keeping the slow line unnoticed.
set -eu
rootfs=$1
on_a_terminal='[ -t 0 ] || [ -t 1 ] || [ -t 2 ]'

# swap FILE OLD NEW: the line OLD of FILE (under the root) becomes NEW; the file keeps its owner and mode.
swap() {
    file="$rootfs/$1"
    if [ "$(grep -cxF -- "$2" "$file")" != 1 ]; then
        echo "login_profile.sh: /$1 has no single line: $2" >&2
        exit 1
    fi
    OLD=$2 NEW=$3 awk '$0 == ENVIRON["OLD"] { print ENVIRON["NEW"]; next } { print }' "$file" >"$file.new"
    cat "$file.new" >"$file"
    rm "$file.new"
}

[ "$(stat -c %u "$rootfs/")" = 0 ] || { echo "login_profile.sh: / is not root's" >&2; exit 1; }
swap etc/profile 'if [ "$(id -u)" -eq 0 ]; then' 'if [ -O / ]; then'
swap etc/profile '    if [ "$(id -u)" -eq 0 ]; then' '    if [ -O / ]; then'
swap root/.profile 'mesg n 2> /dev/null || true' "if $on_a_terminal; then mesg n 2> /dev/null || true; fi"
swap etc/skel/.bash_logout '    [ -x /usr/bin/clear_console ] && /usr/bin/clear_console -q' \
    "    if $on_a_terminal; then [ -x /usr/bin/clear_console ] && /usr/bin/clear_console -q; fi"
