#!/usr/bin/env bash
# Builds the release packages (tools/package.sh) and checks what they promise:
#   - ldd shows no libswift* for any binary (--static-swift-stdlib), and each runs from an empty
#     environment: env -i ./repeaterd --version, no toolchain on PATH;
#   - dpkg-deb --info / --contents list the binaries, units, option files, gzipped man pages,
#     bash/zsh/fish completions, copyright and changelog, and Depends: names no OpenSSL;
#   - lintian finds no error (its warnings are printed);
#   - the .deb installs with dpkg -i, `man repeaterd` renders, /usr/bin/repeaterd --version
#     answers, and dpkg --purge removes it again (only if the package was not installed before);
#   - the four commands are one multi-call binary (bin/repeater, /usr/lib/repeater/repeater) under
#     four names (links); the tarball's enclave/runtime-manager is runtime-manager alone (no relay);
#   - the binaries' sizes are printed (README, "Installing") and held to issue 45's targets.
# Not in tools/test.sh: the static release build alone takes ~8 minutes on 2 cores.
#
#   tools/package-test.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
bash tools/install-deps.sh --packaging

OUT=$(mktemp -d "${TMPDIR:-/tmp}/repeater-package-test.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
bash tools/package.sh --out "$OUT/dist"
PRODUCTS=(repeaterd runtime-manager runtime-client muxcat)
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

TARBALL=$(ls "$OUT"/dist/repeater-*-linux-*.tar.gz)
DEB=$(ls "$OUT"/dist/repeater_*.deb)
VERSION=$(dpkg-deb --field "$DEB" Version)
echo "== $(basename "$TARBALL"), $(basename "$DEB"): version $VERSION"

echo "== the tarball's binaries: no Swift runtime needed"
mkdir -p "$OUT/tar" && tar -C "$OUT/tar" -xzf "$TARBALL"
UNPACKED=$(ls -d "$OUT"/tar/repeater-*)
for product in "${PRODUCTS[@]}"; do
  [ "$(readlink "$UNPACKED/bin/$product")" = repeater ] || fail "the tarball's bin/$product is not a link to bin/repeater"
done
for product in "${PRODUCTS[@]}" ../enclave/runtime-manager; do
  binary="$UNPACKED/bin/$product"
  if ldd "$binary" | grep -q 'libswift\|libFoundation\|libdispatch\|libBlocksRuntime'; then
    fail "$product loads the Swift runtime: $(ldd "$binary" | grep 'swift\|Foundation\|dispatch' | tr -s ' \t' ' ')"
  fi
  answer=$(cd / && env -i "$binary" --version 2>&1) || fail "$product --version from an empty environment: $answer"
  [ "$answer" = "$VERSION" ] || fail "$product --version says '$answer', the package '$VERSION'"
  echo "  $product: $(ldd "$binary" | awk '{print $1}' | grep -v linux-vdso | tr '\n' ' ')→ $answer"
done
for path in systemd/repeaterd.service systemd/repeaterd.socket systemd/runtime-manager.service systemd/repeaterd.default man/man1/repeaterd.1 \
            completions/bash/repeaterd completions/zsh/_repeaterd completions/fish/repeaterd.fish README.md docs/DEPLOYMENT.md copyright; do
  [ -s "$UNPACKED/$path" ] || fail "the tarball has no $path"
done

echo "== dpkg-deb --info"
dpkg-deb --info "$DEB" | sed 's/^/  /'
DEPENDS=$(dpkg-deb --field "$DEB" Depends)
case "$DEPENDS" in *libc6*) ;; *) fail "Depends: names no libc6: $DEPENDS" ;; esac
case "$DEPENDS" in *ssl*) fail "Depends: names OpenSSL, which the binaries do not load: $DEPENDS" ;; esac

echo "== dpkg-deb --contents"
CONTENTS=$(dpkg-deb --contents "$DEB" | awk '{print $6}' | sed 's|^\./|/|')
echo "$CONTENTS" | grep -v '/$' | sed 's/^/  /'
expected=(/usr/lib/systemd/system/repeaterd.service /usr/lib/systemd/system/repeaterd.socket /usr/lib/systemd/system/runtime-manager.service
          /etc/default/repeaterd /etc/default/runtime-manager /usr/share/doc/repeater/copyright /usr/share/doc/repeater/changelog.gz
          /usr/share/doc/repeater/README.md.gz /usr/share/doc/repeater/docs/DEPLOYMENT.md.gz)
expected+=(/usr/lib/repeater/repeater)
for product in "${PRODUCTS[@]}"; do
  expected+=("/usr/bin/$product" "/usr/share/man/man1/$product.1.gz" "/usr/share/bash-completion/completions/$product"
             "/usr/share/zsh/vendor-completions/_$product" "/usr/share/fish/vendor_completions.d/$product.fish")
done
for path in "${expected[@]}"; do
  echo "$CONTENTS" | grep -qx "$path" || fail "the .deb has no $path"
done

for product in "${PRODUCTS[@]}"; do
  target=$(dpkg-deb --contents "$DEB" | awk -v path="./usr/bin/$product" '$6 == path { print $8 }')
  [ "$target" = ../lib/repeater/repeater ] || fail "/usr/bin/$product is not a link to ../lib/repeater/repeater: '$target'"
done

echo "== lintian"
lintian_output=$(lintian --tag-display-limit 0 "$DEB" 2>&1 || true)
echo "${lintian_output:-  (nothing)}" | sed 's/^/  /'
if echo "$lintian_output" | grep -q '^E: '; then fail "lintian reports errors"; fi
echo "  $(echo "$lintian_output" | grep -c '^W: ' || true) warning(s)"

echo "== dpkg -i, man repeaterd, units enabled, dpkg --remove (masked), dpkg --purge (forgotten)"
if dpkg-query -W -f='${Status}' repeater 2>/dev/null | grep -q "install ok installed"; then
  echo "  skipped: a repeater package is installed on this machine already (not replacing it)"
else
  $SUDO dpkg -i "$DEB" | sed 's/^/  /'
  for product in "${PRODUCTS[@]}"; do
    [ "$(/usr/bin/$product --version)" = "$VERSION" ] || fail "/usr/bin/$product --version"
  done
  /usr/bin/runtime-client --help | grep -q '^USAGE: runtime-client' || fail "/usr/bin/runtime-client --help is not runtime-client's"
  if [ -e /usr/share/man/man1/repeaterd.1.gz ]; then
    page=$(MANPAGER=cat MANWIDTH=80 man repeaterd 2>&1) || fail "man repeaterd: $page"
  else
    # Some container images exclude /usr/share/man from every package (dpkg path-exclude).
    echo "  /usr/share/man/man1/repeaterd.1.gz was not installed (dpkg path-exclude?): rendering the .deb's copy"
    dpkg-deb -x "$DEB" "$OUT/root"
    page=$(MANPAGER=cat MANWIDTH=80 man -l "$OUT/root/usr/share/man/man1/repeaterd.1.gz" 2>&1) || fail "man -l: $page"
  fi
  echo "$page" | grep -q -- '--backend' || fail "man repeaterd does not render its options: $page"
  echo "$page" | grep -q -- '(default: 16384)' || fail "man repeaterd does not show the defaults --help shows: $page"
  echo "$page" | grep -Eq '^ +64 ' || fail "man repeaterd's EXIT STATUS does not list 64 (a usage error): $page"
  echo "$page" | grep -Eq 'repeaterd (subcommand|help)' && fail "man repeaterd's synopsis names a subcommand repeaterd does not have: $page"
  echo "$page" | sed -n '1,12p' | sed 's/^/  | /'
  # The units are enabled the Debian way (deb-systemd-helper), and the sysctl file is in place.
  for wants in multi-user.target.wants/repeaterd.service multi-user.target.wants/runtime-manager.service sockets.target.wants/repeaterd.socket; do
    [ -L "/etc/systemd/system/$wants" ] || fail "dpkg -i did not enable $wants"
  done
  grep -q '^net.ipv4.tcp_migrate_req = 1$' /usr/lib/sysctl.d/60-repeater.conf || fail "no /usr/lib/sysctl.d/60-repeater.conf setting tcp_migrate_req"
  $SUDO dpkg --remove repeater | sed 's/^/  /'
  [ "$(readlink /etc/systemd/system/repeaterd.service)" = /dev/null ] || fail "dpkg --remove did not mask repeaterd.service"
  $SUDO dpkg --purge repeater | sed 's/^/  /'
  [ ! -e /usr/bin/repeaterd ] || fail "dpkg --purge left /usr/bin/repeaterd"
  [ ! -e /etc/systemd/system/multi-user.target.wants/repeaterd.service ] || fail "dpkg --purge left repeaterd.service enabled"
  [ ! -e /etc/systemd/system/repeaterd.service ] || fail "dpkg --purge left repeaterd.service masked"
fi

echo "== sizes (issue 45: no ICU data, every binary at most 40 MiB, runtime-manager at most 32, installed at most 100)"
for binary in bin/repeater enclave/runtime-manager; do
  bytes=$(stat -c %s "$UNPACKED/$binary")
  awk -v name="$binary" -v bytes="$bytes" 'BEGIN { printf "  %-24s %6.1f MiB (stripped)\n", name, bytes / 1048576 }'
  [ "$bytes" -le $((40 * 1048576)) ] || fail "$binary is over 40 MiB: $bytes bytes"
  # Stripped binaries keep their dynamic symbols only; the ICU data shows as its text in .rodata.
  if grep -aq "icudt76" "$UNPACKED/$binary"; then fail "$binary contains ICU data (icudt76): a module imports Foundation"; fi
done
[ "$(stat -c %s "$UNPACKED/enclave/runtime-manager")" -le $((32 * 1048576)) ] || fail "enclave/runtime-manager is over 32 MiB"
# Type names stay in Swift's reflection metadata after strip: the relay's server must not be there.
if grep -aq "RepeaterServer" "$UNPACKED/enclave/runtime-manager"; then fail "enclave/runtime-manager links the untrusted relay (RepeaterServer)"; fi
grep -aq "RepeaterServer" "$UNPACKED/bin/repeater" || fail "bin/repeater has no RepeaterServer: the check above proves nothing"
INSTALLED_KIB=$(dpkg-deb --field "$DEB" Installed-Size)
echo "  Installed-Size: $INSTALLED_KIB KiB"
[ "$INSTALLED_KIB" -le $((100 * 1024)) ] || fail "the .deb's Installed-Size is over 100 MiB: $INSTALLED_KIB KiB"
ls -l "$TARBALL" "$DEB" | awk '{ printf "  %-40s %6.1f MiB\n", $9, $5 / 1048576 }' | sed "s|$OUT/dist/||"

if [ "$failures" -gt 0 ]; then
  echo "package-test: $failures failure(s)"
  exit 1
fi
echo "package-test: every check passed"
