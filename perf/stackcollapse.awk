#!/usr/bin/awk -f
# Fold `perf script` call chains into "comm;outer;...;leaf count" lines, the input format of
# flame graph renderers (inferno-flamegraph, flamegraph.pl, speedscope). A stand-in for
# stackcollapse-perf.pl when neither inferno nor FlameGraph is installed.
function emit(   s, i) {
    if (n == 0) return
    s = comm
    for (i = n - 1; i >= 0; i--) s = s ";" frames[i]
    count[s]++
    n = 0
}
/^[^ \t#]/ { emit(); comm = $1; gsub(/;/, ":", comm); next }
/^[ \t]+[0-9a-f]+ / {
    line = $0
    sub(/^[ \t]+[0-9a-f]+ /, "", line)
    sub(/ \([^()]*\)$/, "", line)       # " (/path/to/dso)"
    sub(/\+0x[0-9a-f]+$/, "", line)     # "+0x1c"
    gsub(/;/, ":", line)
    if (line == "") line = "[unknown]"
    frames[n++] = line
    next
}
/^[ \t]*$/ { emit() }
END { emit(); for (k in count) print k, count[k] }
