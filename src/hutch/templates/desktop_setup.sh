#!/bin/sh
# Lays out the desktop template's root filesystem ($1) after its packages are installed: noVNC where
# e2b-desktop looks for it, short names for the applications agents launch, the default applications
# xdg-open picks, a session that starts at once, and no compositing (an X server without a GPU pays for it
# in CPU).
set -eu
root=$1

mkdir -p "$root/opt"
ln -sfn /usr/share/novnc "$root/opt/noVNC"
ln -sfn vnc.html "$root/usr/share/novnc/index.html"


# `launch("gedit")`, `launch("firefox")`…: gtk-launch finds an application by its .desktop file's name.
apps="$root/usr/share/applications"
alias_app() {  # alias_app NAME ORIGINAL: NAME.desktop starts what ORIGINAL.desktop does, hidden in menus
    sed '/^\[Desktop Entry\]$/a NoDisplay=true' "$apps/$2.desktop" > "$apps/$1.desktop"
}
alias_app mousepad org.xfce.mousepad
alias_app gedit org.gnome.gedit
alias_app firefox firefox-esr
alias_app terminal xfce4-terminal
alias_app files thunar

cat > "$root/etc/xdg/mimeapps.list" <<'LIST'
[Default Applications]
text/plain=org.xfce.mousepad.desktop
text/html=firefox-esr.desktop
application/xhtml+xml=firefox-esr.desktop
x-scheme-handler/http=firefox-esr.desktop
x-scheme-handler/https=firefox-esr.desktop
inode/directory=thunar.desktop
LIST
chroot "$root" update-alternatives --set x-www-browser /usr/bin/firefox-esr
chroot "$root" update-desktop-database /usr/share/applications

sed -i 's/^use_compositing=true$/use_compositing=false/' "$root/usr/share/xfwm4/defaults"

# The session's clients in one group, started together: e2b-desktop's create waits until xfce4-session,
# xfwm4 and xfdesktop run, which Xfce's five groups, each waiting for the one before, make take 1.4 s.
# Thunar is not among them: xfdesktop starts it over D-Bus when it needs it.
client() {  # client N COMMAND: the session's Nth client
    printf '      <property name="Client%s_Command" type="array">\n' "$1"
    printf '        <value type="string" value="%s"/>\n' "$2"
    printf '      </property>\n'
    printf '      <property name="Client%s_Priority" type="int" value="15"/>\n' "$1"
    printf '      <property name="Client%s_PerScreen" type="bool" value="false"/>\n' "$1"
}
{
    printf '<?xml version="1.0" encoding="UTF-8"?>\n\n<channel name="xfce4-session" version="1.0">\n'
    printf '  <property name="general" type="empty">\n'
    printf '    <property name="FailsafeSessionName" type="string" value="Failsafe"/>\n'
    printf '    <property name="LockCommand" type="string" value=""/>\n'
    printf '  </property>\n  <property name="sessions" type="empty">\n    <property name="Failsafe" type="empty">\n'
    printf '      <property name="IsFailsafe" type="bool" value="true"/>\n'
    printf '      <property name="Count" type="int" value="4"/>\n'
    client 0 xfwm4
    client 1 xfsettingsd
    client 2 xfce4-panel
    client 3 xfdesktop
    printf '    </property>\n  </property>\n</channel>\n'
} > "$root/etc/xdg/xfce4/xfconf/xfce-perchannel-xml/xfce4-session.xml"
# A quiet first start: no tips, no screensaver, no welcome page in the browser.
mkdir -p "$root/usr/lib/firefox-esr/distribution"
cat > "$root/usr/lib/firefox-esr/distribution/policies.json" <<'POLICIES'
{"policies": {"DisableAppUpdate": true, "DisableTelemetry": true, "DontCheckDefaultBrowser": true,
  "OverrideFirstRunPage": "", "OverridePostUpdatePage": "", "NoDefaultBookmarks": true}}
POLICIES
