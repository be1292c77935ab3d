#!/bin/sh
# Renders golive.vcl (read on standard input) for the golive nodes named as HOST:PORT, in
# the order the edge tries them: one backend each, all in the fallback director, and the
# next node to ask when a fetch from one fails (`golive_next_origin`).
#
#   sh deploy/varnish/render.sh 10.0.0.5:8080 10.0.0.6:8080 < deploy/varnish/golive.vcl \
#       > /etc/varnish/golive.vcl
#
# An IPv6 address goes in brackets: [2001:db8::5]:8080. Needs only sh and awk.
set -eu
if [ "$#" -eq 0 ]; then
    echo "usage: render.sh HOST:PORT [HOST:PORT ...] < golive.vcl > rendered.vcl" >&2
    exit 2
fi
for origin in "$@"; do
    case $origin in
        *[!A-Za-z0-9.:_\[\]-]* | "" )
            echo "render.sh: not a HOST:PORT: $origin" >&2; exit 2 ;;
    esac
    port=${origin##*:}
    case $port in
        "" | *[!0-9]* ) echo "render.sh: no port in $origin" >&2; exit 2 ;;
    esac
done
awk -v origins="$*" '
function host_of(o,   h) { h = o; sub(/:[0-9]+$/, "", h); gsub(/[][]/, "", h); return h }
function port_of(o,   p) { p = o; sub(/^.*:/, "", p); return p }
function name_of(i) { return i == 1 ? "golive" : "golive" i }
function fill(text, i,   t) {
    t = text
    gsub(/\{\{ORIGIN_HOST\}\}/, host_of(o[i]), t)
    gsub(/\{\{ORIGIN_PORT\}\}/, port_of(o[i]), t)
    return t
}
BEGIN { n = split(origins, o, " ") }
/^backend golive \{$/ { inside = 1; block = "" }
inside {
    block = block $0 "\n"
    if ($0 == "}") {
        inside = 0
        for (i = 1; i <= n; i++) {
            b = fill(block, i)
            sub(/^backend golive \{/, "backend " name_of(i) " {", b)
            printf "%s%s", (i > 1 ? "\n" : ""), b
        }
    }
    next
}
/^    origins\.add_backend\(golive\);$/ {
    for (i = 1; i <= n; i++) print "    origins.add_backend(" name_of(i) ");"
    next
}
/^    if \(bereq\.retries < 0 / { sub(/< 0 /, "< " (n - 1) " ") }
/^    set bereq\.backend = golive;$/ {
    for (i = 1; i < n; i++)
        printf "    %sif (bereq.http.X-Golive-Failed == \"%s\") {\n        set bereq.backend = %s;\n",
            (i > 1 ? "} els" : ""), name_of(i), name_of(i + 1)
    if (n > 1) print "    } else {\n        set bereq.backend = golive;\n    }"
    else print
    next
}
{ print fill($0, 1) }
'
