#!/usr/bin/env bash
# Builds a release of the four commands that needs no Swift runtime on the host, and packs it:
#
#   dist-out/repeater-VERSION-linux-ARCH.tar.gz   bin/ (repeater and the four names as links to it),
#                                                 enclave/runtime-manager (alone, static),
#                                                 systemd/, man/, completions/, README.md, docs/, copyright
#   dist-out/repeater_VERSION_DEBARCH.deb         /usr/lib/repeater/repeater and the four names in
#                                                 /usr/bin as links to it, /usr/lib/systemd/system, /etc/default,
#                                                 /usr/lib/sysctl.d/60-repeater.conf (tcp_migrate_req),
#                                                 /usr/share/man/man1 (gzipped), bash/zsh/fish completions,
#                                                 /usr/share/doc/repeater/{copyright,changelog.gz,README.md.gz,docs/}
#
#   tools/package.sh [--out DIR]
#
# - The binaries are built with `--static-swift-stdlib` (scratch path .build-package, so the
#   debug tree is untouched) and stripped; what they still load (libc, libstdc++, libgcc_s) is
#   the .deb's Depends:, computed by dpkg-shlibdeps. No OpenSSL: TLS is BoringSSL, linked in.
# - One multi-call binary, `repeater`, holds all four commands and picks one by the name it runs
#   under (issue 45): the Swift runtime, NIO and BoringSSL once instead of four times (37 MiB
#   instead of 110). runtime-manager is also built alone, for an enclave image: it links
#   nothing of the untrusted relay, and is the tarball's enclave/runtime-manager.
# - VERSION is `repeaterd --version` (Sources/CommandLineSupport/Version.swift, the one place).
# - Man pages come from tools/manpage.py, from each built binary's own description of its options
#   (swift-argument-parser's generate-manual named a `help` subcommand that repeaterd does not
#   have, left out the defaults and said nothing of exit status 64: issue 41).
# - Completions from tools/completions.sh (argument-parser's scripts; bash's learns `--option=`).
# - The README and docs/*.md go to /usr/share/doc/repeater/, since the units and /etc/default
#   files say "see README"; as dh_compress does, what is over 4 KiB is gzipped there.
# - Maintainer scripts (dist/debian/postinst, prerm, postrm) are what dh_installsystemd and
#   dh_installsysctl write: the units are enabled on install (not started: they need options and
#   certificates first), restarted on upgrade if running, stopped on removal, masked until purge;
#   tcp_migrate_req is applied at install.
# tools/package-test.sh checks the result (ldd, env -i, dpkg-deb, lintian, dpkg -i, man).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT="$ROOT/dist-out"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    *) echo "usage: tools/package.sh [--out DIR]" >&2; exit 2 ;;
  esac
done
PRODUCTS=(repeaterd runtime-manager runtime-client muxcat)
MULTI_CALL=repeater
SCRATCH="$ROOT/.build-package"

bash tools/install-deps.sh --packaging

echo "== release build, --static-swift-stdlib ($MULTI_CALL, and runtime-manager alone)"
for product in "$MULTI_CALL" runtime-manager; do
  swift build -c release --static-swift-stdlib --scratch-path "$SCRATCH" --product "$product"
done
BIN="$SCRATCH/release"

VERSION=$("$BIN/$MULTI_CALL" repeaterd --version)
ARCH=$(uname -m)
DEB_ARCH=$(dpkg --print-architecture)
echo "== version $VERSION, $ARCH ($DEB_ARCH)"

# The last commit's date (reproducible pages), or today outside a git checkout.
DATE=$(git log -1 --format=%cs 2>/dev/null || date -u +%F)

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/repeater-package.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT

# The files both packages hold, laid out once.
FILES="$STAGE/files"
mkdir -p "$FILES/bin" "$FILES/enclave" "$FILES/man" "$FILES/completions/bash" "$FILES/completions/zsh" "$FILES/completions/fish" "$FILES/systemd"
strip --strip-unneeded -o "$FILES/bin/$MULTI_CALL" "$BIN/$MULTI_CALL"
strip --strip-unneeded -o "$FILES/enclave/runtime-manager" "$BIN/runtime-manager"
for product in "${PRODUCTS[@]}"; do
  # Each command is the multi-call binary under its name; pages and completions come from it.
  ln -s "$MULTI_CALL" "$FILES/bin/$product"
  python3 tools/manpage.py "$FILES/bin/$product" --output-directory "$FILES/man" --date "$DATE" \
    --authors "The Repeater developers <repeater@example.org>" >/dev/null
  bash tools/completions.sh "$FILES/bin/$product" "$FILES/completions"
done
cp dist/systemd/*.service dist/systemd/*.socket "$FILES/systemd/"
for unit in repeaterd runtime-manager; do cp "dist/systemd/$unit.default" "$FILES/systemd/$unit.default"; done

mkdir -p "$OUT"

# --- the tarball
NAME="repeater-$VERSION-linux-$ARCH"
TAR_ROOT="$STAGE/tar/$NAME"
mkdir -p "$TAR_ROOT"
cp -a "$FILES/bin" "$FILES/enclave" "$FILES/systemd" "$FILES/completions" "$TAR_ROOT/"
mkdir -p "$TAR_ROOT/sysctl.d" && cp dist/sysctl/60-repeater.conf "$TAR_ROOT/sysctl.d/"
mkdir -p "$TAR_ROOT/man/man1" && cp "$FILES/man/"*.1 "$TAR_ROOT/man/man1/"
cp README.md dist/debian/copyright "$TAR_ROOT/"
mkdir -p "$TAR_ROOT/docs" && cp docs/*.md "$TAR_ROOT/docs/"
tar -C "$STAGE/tar" --owner=0 --group=0 --numeric-owner -czf "$OUT/$NAME.tar.gz" "$NAME"

# --- the .deb
DEB="$STAGE/deb"
install -d "$DEB/DEBIAN" "$DEB/usr/bin" "$DEB/usr/lib/repeater" "$DEB/usr/lib/systemd/system" "$DEB/usr/lib/sysctl.d" "$DEB/etc/default" "$DEB/usr/share/man/man1" \
  "$DEB/usr/share/bash-completion/completions" "$DEB/usr/share/zsh/vendor-completions" \
  "$DEB/usr/share/fish/vendor_completions.d" "$DEB/usr/share/doc/repeater"
install -m 0755 "$FILES/bin/$MULTI_CALL" "$DEB/usr/lib/repeater/$MULTI_CALL"
for product in "${PRODUCTS[@]}"; do ln -s "../lib/repeater/$MULTI_CALL" "$DEB/usr/bin/$product"; done
install -m 0644 "$FILES/systemd/"*.service "$FILES/systemd/"*.socket "$DEB/usr/lib/systemd/system/"
install -m 0644 dist/sysctl/60-repeater.conf "$DEB/usr/lib/sysctl.d/60-repeater.conf"
install -m 0755 dist/debian/postinst dist/debian/prerm dist/debian/postrm "$DEB/DEBIAN/"
install -m 0644 "$FILES/systemd/repeaterd.default" "$DEB/etc/default/repeaterd"
install -m 0644 "$FILES/systemd/runtime-manager.default" "$DEB/etc/default/runtime-manager"
for page in "$FILES/man/"*.1; do
  gzip -9n < "$page" > "$DEB/usr/share/man/man1/$(basename "$page").gz"
done
install -m 0644 "$FILES/completions/bash/"* "$DEB/usr/share/bash-completion/completions/"
install -m 0644 "$FILES/completions/zsh/"* "$DEB/usr/share/zsh/vendor-completions/"
install -m 0644 "$FILES/completions/fish/"* "$DEB/usr/share/fish/vendor_completions.d/"
install -m 0644 dist/debian/copyright "$DEB/usr/share/doc/repeater/copyright"
install -d "$DEB/usr/share/doc/repeater/docs"
install -m 0644 README.md "$DEB/usr/share/doc/repeater/README.md"
install -m 0644 docs/*.md "$DEB/usr/share/doc/repeater/docs/"
find "$DEB/usr/share/doc/repeater" -name '*.md' -size +4k -exec gzip -9n {} +
{
  echo "repeater ($VERSION) unstable; urgency=medium"
  echo
  echo "  * Release $VERSION: static binaries, systemd units, man pages, completions."
  echo
  echo " -- The Repeater developers <repeater@example.org>  $(date -R -u -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")"
} | gzip -9n > "$DEB/usr/share/doc/repeater/changelog.gz"
chmod 0644 "$DEB/usr/share/doc/repeater/changelog.gz"
printf '/etc/default/repeaterd\n/etc/default/runtime-manager\n' > "$DEB/DEBIAN/conffiles"

# What the binaries still load, as Debian package dependencies.
mkdir -p "$STAGE/shlibs/debian"
printf 'Source: repeater\n\nPackage: repeater\nArchitecture: any\n' > "$STAGE/shlibs/debian/control"
DEPENDS=$(cd "$STAGE/shlibs" && dpkg-shlibdeps -O "-e$DEB/usr/lib/repeater/$MULTI_CALL" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
INSTALLED_KIB=$(du -sk --exclude=DEBIAN "$DEB" | cut -f1)
cat > "$DEB/DEBIAN/control" <<CONTROL
Package: repeater
Version: $VERSION
Architecture: $DEB_ARCH
Maintainer: The Repeater developers <repeater@example.org>
Installed-Size: $INSTALLED_KIB
Depends: $DEPENDS, init-system-helpers (>= 1.54~)
Section: net
Priority: optional
Description: byte-transparent TCP repeater over one multiplexed link
 Relays many client connections to a service behind a single link: every
 client TCP connection becomes one yamux stream on a long-lived link to the
 runtime manager of a confidential-computing enclave (TCP, Unix socket or
 vsock). The package holds repeaterd, runtime-manager (the endpoint behind
 the link: mutual TLS and a file store), runtime-client (the client command
 line) and muxcat (netcat for the multiplexed link), one binary under four
 names, with systemd units, manual pages and shell completions.
CONTROL
dpkg-deb --root-owner-group -Zxz --build "$DEB" "$OUT/repeater_${VERSION}_${DEB_ARCH}.deb" >/dev/null

echo "== written"
ls -l "$OUT/$NAME.tar.gz" "$OUT/repeater_${VERSION}_${DEB_ARCH}.deb"
echo "binaries (stripped):"
for binary in "bin/$MULTI_CALL" enclave/runtime-manager; do
  awk -v name="$binary" -v bytes="$(stat -c %s "$FILES/$binary")" 'BEGIN { printf "  %-24s %6.1f MiB\n", name, bytes / 1048576 }'
done
echo "Installed-Size: $INSTALLED_KIB KiB"
