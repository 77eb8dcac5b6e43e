# Sourced by scripts that reach Debian's archive outside the system's own apt (debootstrap, other
# suites, source packages). Defines:
#   debian_mirror [security]  prints the archive URI the machine's own apt configuration uses for
#                             Debian (deb822 files in /etc/apt/sources.list.d/*.sources, then
#                             one-line entries in /etc/apt/sources.list{,.d/*.list}); with
#                             'security', the URI it uses for the security suites. Nothing printed
#                             and status 1 when the configuration names none.
# SPINEPARSE_DEBIAN_MIRROR (and SPINEPARSE_DEBIAN_SECURITY_MIRROR) override what is read; APT_ETC
# (default /etc/apt) is the folder read.

# _apt_source_uris: every enabled source as "URI|SUITES|COMPONENTS" lines, deb822 and one-line.
_apt_source_uris() {
  local f
  for f in "${APT_ETC:-/etc/apt}"/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # One stanza per blank-line-separated block; Enabled: no turns it off.
    awk 'BEGIN { RS=""; FS="\n" }
      {
        uris=""; suites=""; comps=""; types=""; enabled="yes"
        for (i = 1; i <= NF; i++) {
          line=$i; sub(/^[ \t]+/, "", line)
          if (line ~ /^#/) continue
          if (tolower(line) ~ /^uris:/) { sub(/^[^:]*:[ \t]*/, "", line); uris=line }
          else if (tolower(line) ~ /^suites:/) { sub(/^[^:]*:[ \t]*/, "", line); suites=line }
          else if (tolower(line) ~ /^components:/) { sub(/^[^:]*:[ \t]*/, "", line); comps=line }
          else if (tolower(line) ~ /^types:/) { sub(/^[^:]*:[ \t]*/, "", line); types=line }
          else if (tolower(line) ~ /^enabled:/) { sub(/^[^:]*:[ \t]*/, "", line); enabled=tolower(line) }
        }
        if (enabled != "no" && types ~ /(^| )deb( |$)/ && uris != "") {
          n=split(uris, u, /[ \t]+/); for (j = 1; j <= n; j++) print u[j] "|" suites "|" comps
        }
      }' "$f"
  done
  for f in "${APT_ETC:-/etc/apt}"/sources.list "${APT_ETC:-/etc/apt}"/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    # deb [options] URI SUITE COMPONENT...
    sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" && NF >= 3 { c = ""; for (i = 4; i <= NF; i++) c = c " " $i; print $2 "|" $3 "|" c }'
  done
}

debian_mirror() {
  local want=${1:-main} uri suites
  if [ "$want" = security ] && [ -n "${SPINEPARSE_DEBIAN_SECURITY_MIRROR:-}" ]; then
    echo "$SPINEPARSE_DEBIAN_SECURITY_MIRROR"; return 0
  fi
  if [ "$want" = main ] && [ -n "${SPINEPARSE_DEBIAN_MIRROR:-}" ]; then
    echo "$SPINEPARSE_DEBIAN_MIRROR"; return 0
  fi
  local comps suite
  while IFS='|' read -r uri suites comps; do
    # Debian's own archive: a suite named by a Debian codename or class, with the main component
    # (third-party archives use their own suite or component names).
    case " $comps " in *" main "*) ;; *) continue ;; esac
    for suite in $suites; do
      case "$want:${suite%-updates}" in
        security:*-security) echo "${uri%/}"; return 0 ;;
        main:bookworm | main:trixie | main:bullseye | main:forky | main:sid | main:stable | \
          main:testing | main:unstable | main:oldstable)
          echo "${uri%/}"; return 0 ;;
      esac
    done
  done < <(_apt_source_uris)
  return 1
}
