#!/usr/bin/env bash
# Prove the README's first two commands on a pristine Debian 12, as a newcomer
# would meet them. Not run in CI: it needs root, network and a few minutes.
#
#   sudo scripts/fresh-debian.sh [--mirror URL]
#
# What it does, and why each step is there:
# - Builds a Debian 12 (bookworm) root with `debootstrap --variant=minbase`:
#   the smallest Debian, so nothing this (used) machine has installed can
#   hide a missing dependency.
# - Runs everything inside `unshare --mount --propagation private`: every
#   mount made here (debootstrap's own, the /proc /sys /dev bind mounts)
#   lives in a private mount namespace and vanishes with it; none can reach
#   this machine's mount table. The binds are `--rbind` then `--make-rslave`
#   (an unmount inside never propagates back), and a trap unmounts the root
#   recursively (`umount -R`) before anything is deleted, then deletes with
#   `rm --one-file-system` so a mount left behind is never descended into.
#   A careless unmount of a /dev bind can take the host's /dev/pts with it.
# - Copies in (never binds) a clean `git clone` of this checkout at HEAD
#   (committed work only), ../shared beside it (the suite's real-CPU data),
#   and what this machine's apt and pip need to reach their registries: the
#   enabled apt sources and apt.conf.d snippets, resolv.conf, the CA bundle
#   and the local CAs it is built from (/usr/local/share/ca-certificates), and
#   the pip configuration file that names the bundle (/etc/pip.conf). Not copied
#   on purpose: pip settings that point at this machine's local wheel
#   directories (they do not exist in a fresh root, and pip warns about them).
# - Runs the first two lines of the README's first code block exactly as
#   written, in the clone, as root, under `env -i` with only PATH and HOME,
#   and prints each one's exit code and wall time.
# It changes nothing on this machine: the root lives in a temporary directory
# under /var/tmp, removed on exit whatever happens.
set -euo pipefail

checkout=$(cd "$(dirname "$0")/.." && pwd)
mirror=http://deb.debian.org/debian
while [ $# -gt 0 ]; do
  case $1 in
    --mirror) mirror=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "fresh-debian: unknown argument $1" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" != 0 ]; then
  echo "fresh-debian: needs root (debootstrap, chroot, mounts)" >&2
  exit 2
fi

if [ -z "${FLEETCPU_FRESH_NS:-}" ]; then
  if ! command -v debootstrap >/dev/null; then
    echo "fresh-debian: installing debootstrap on this machine" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  # Re-run this script in a private mount namespace: nothing mounted below can leak.
  exec unshare --mount --propagation private env FLEETCPU_FRESH_NS=1 "$0" --mirror "$mirror"
fi

shared=$(cd "$checkout/../shared" && pwd)
work=$(mktemp -d /var/tmp/fleetcpu-fresh.XXXXXX)
root=$work/root

cleanup() {
  local status=$?
  set +e
  if [ -d "$root" ]; then
    # Deepest first; lazy only as a last resort, and only inside our namespace.
    umount -R "$root/proc" "$root/sys" "$root/dev" 2>/dev/null
    findmnt -rn -o TARGET | grep -F "$root/" | sort -r | xargs -r -n1 umount -l 2>/dev/null
    if findmnt -rn -o TARGET | grep -qF "$root/"; then
      echo "fresh-debian: mounts remain under $root; not deleting it" >&2
      exit "$status"
    fi
  fi
  rm -rf --one-file-system "$work"
  exit "$status"
}
trap cleanup EXIT INT TERM

stamp() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(stamp)" 'BEGIN { printf "%.1f", b - a }'; }
t0=$(stamp)
echo "== debootstrap --variant=minbase bookworm ($mirror)" >&2
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
}
echo "== root built in $(since "$t0") s" >&2

echo "== copying in apt, pip and CA configuration" >&2
cp /etc/resolv.conf "$root/etc/resolv.conf"
if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null || [ -s /etc/apt/sources.list ]; then
  rm -f "$root/etc/apt/sources.list"
  [ -s /etc/apt/sources.list ] && cp /etc/apt/sources.list "$root/etc/apt/"
  # Only the enabled entries (.list / .sources); disabled ones stay behind.
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] && cp "$f" "$root/etc/apt/sources.list.d/"
  done
fi
for f in /etc/apt/apt.conf.d/99*; do
  [ -e "$f" ] && cp "$f" "$root/etc/apt/apt.conf.d/"
done
for f in /usr/share/keyrings/*.gpg; do
  [ -e "$root$f" ] || cp "$f" "$root/usr/share/keyrings/"
done
mkdir -p "$root/etc/ssl/certs" "$root/usr/local/share/ca-certificates"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
# The bundle alone is not enough: installing ca-certificates in the root (a
# dependency of the first command's packages) rebuilds it from Debian's CAs
# plus /usr/local/share/ca-certificates, dropping any local CA (a TLS proxy's).
cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$root/etc/pip.conf"

echo "== copying in a clean clone of $(git -C "$checkout" rev-parse --short HEAD) and ../shared" >&2
mkdir -p "$root/root/src"
git clone -q --no-hardlinks "$checkout" "$root/root/src/fleetcpu"
git -C "$root/root/src/fleetcpu" checkout -q --detach "$(git -C "$checkout" rev-parse HEAD)"
cp -a "$shared" "$root/root/src/shared"

for d in proc sys dev; do
  mount --rbind "/$d" "$root/$d"
  mount --make-rslave "$root/$d"
done

readme="$root/root/src/fleetcpu/README.md"
mapfile -t commands < <(awk '/^```/ { if (inblock) exit; inblock = 1; next } inblock' "$readme" | head -n 2)
PATH_IN=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
results=()
for cmd in "${commands[@]}"; do
  echo "== env -i PATH=$PATH_IN HOME=/root bash -c '$cmd'  (in /root/src/fleetcpu)" >&2
  start=$(stamp)
  set +e
  chroot "$root" /usr/bin/env -i PATH="$PATH_IN" HOME=/root \
    /bin/bash -c "cd /root/src/fleetcpu && $cmd" 2>&1 | tee "$work/out.log"
  status=${PIPESTATUS[0]}
  set -e
  took=$(since "$start")
  # Any line saying "warning" is a finding: list them, as the issue asks for none.
  warnings=$(grep -iE 'warn' "$work/out.log" | head -n 20 || true)
  results+=("$(printf 'exit %s  %6s s  %s' "$status" "$took" "$cmd")")
  if [ -n "$warnings" ]; then results+=("$(printf '  warning line(s):\n%s' "$(sed 's/^/    /' <<<"$warnings")")"); fi
  if [ "$cmd" = "${commands[0]}" ]; then
    # Every export format must work after the first command alone (before the
    # test command installs more): the formats as `baseline --help` lists them.
    inroot() { chroot "$root" /usr/bin/env -i PATH="$PATH_IN" HOME=/root /bin/bash -c "cd /root/src/fleetcpu && $1"; }
    formats=$(inroot ".venv/bin/fleetcpu baseline --help" 2>/dev/null \
              | grep -o -- '--format \[[a-z|]*\]' | tr -d '[]' | cut -d' ' -f2 | tr '|' ' ')
    line="formats after it alone:"
    for f in $formats; do
      set +e
      inroot ".venv/bin/fleetcpu baseline --pool local --format $f" >/dev/null 2>"$work/format.err"
      fstatus=$?
      set -e
      line+=" $f=$fstatus"
      [ $fstatus = 0 ] || line+=" ($(tail -n 1 "$work/format.err"))"
    done
    results+=("  $line")
  fi
done

echo "== results (Debian $(cat "$root/etc/debian_version"), minbase)"
printf '%s\n' "${results[@]}"
