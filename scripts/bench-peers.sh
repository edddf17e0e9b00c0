#!/bin/sh
# make bench-peers: installs the peers when missing (Debian, as root), builds
# bench/peers in build/peers, runs one program per workload (crew, a plain
# baseline and every peer side by side, interleaved, each run in its own
# process), writes bench/results/W*.md and W*.csv, and draws
# bench/results/ns_per_task.png (W2, ns/task per pool) with gnuplot.
#
#   scripts/bench-peers.sh [flags for every program, e.g. --scale --runs 1]
#   PEERS_WORKLOADS="W2 W4" scripts/bench-peers.sh   # some workloads only
set -eu
cd "$(dirname "$0")/.."

BUILD=${PEERS_BUILD_DIR:-build/peers}
OUT=${PEERS_OUT_DIR:-bench/results}
WORKLOADS=${PEERS_WORKLOADS:-"W1 W2 W2b W3 W4 W5 W6"}

# --- the peers (all from Debian) ---
need=""
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null |
             grep -q "install ok installed"; }
for p in libglib2.0-dev libuv1-dev libtbb-dev libboost-dev cthreadpool-dev \
         gnuplot-nox g++ pkg-config cmake; do
    have_pkg "$p" || need="$need $p"
done
if [ -n "$need" ]; then
    echo "bench-peers: installing$need"
    if [ "$(id -u)" -ne 0 ]; then
        echo "bench-peers: need root to install$need" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq $need
fi

# --- build ---
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCREW_TESTS=OFF \
    -DCREW_EXAMPLES=OFF -DCREW_SHARED=OFF -DCREW_INSTALL=OFF \
    -DCREW_BENCH_PEERS=ON >/dev/null
cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" \
    --target bench_peers

# --- run ---
mkdir -p "$OUT"
{
    echo "Peers (Debian packages):"
    for p in libglib2.0-dev libuv1-dev libtbb-dev libboost-dev \
             cthreadpool-dev libgomp1; do
        printf '  %s %s\n' "$p" \
            "$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || echo '?')"
    done
    echo
} | tee "$OUT/peers-versions.txt"
start=$(date +%s)
for w in $WORKLOADS; do
    prog="$BUILD/bench/peers/peers_$(echo "$w" | tr 'A-Z' 'a-z')"
    echo "== $w"
    "$prog" --out-dir "$OUT" "$@"
    echo
done
echo "bench-peers: all workloads took $(( $(date +%s) - start )) s"

# --- the chart: W2 ns/task per pool ---
if [ -f "$OUT/W2.csv" ] && command -v gnuplot >/dev/null 2>&1; then
    data=$(mktemp)
    # pool<TAB>median for the rows that ran (a non-empty median).
    awk -F',' 'NR > 1 && $5 != "" { print $2 "\t" $5 }' "$OUT/W2.csv" \
        > "$data"
    params=$(awk -F',' 'NR == 2 { print $3 }' "$OUT/W2.csv")
    machine=$(sed -n 's/^Machine: //p' "$OUT/W2.md" | head -1)
    gnuplot <<GP
set terminal pngcairo size 1000,560 noenhanced font ",10"
set output "$OUT/ns_per_task.png"
set title "W2: tiny tasks from one thread ($params), median ns/task\n$machine"
set datafile separator "\t"
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.7
set ylabel "ns per task (lower is better)"
stats "$data" using 2 nooutput
set yrange [0:STATS_max * 1.12]
set xtics rotate by -30 left
set grid ytics
unset key
plot "$data" using 2:xtic(1) linecolor rgb "#3070b0", \
     "" using 0:2:(sprintf("%.0f", \$2)) with labels offset 0,0.8
GP
    rm -f "$data"
    echo "bench-peers: wrote $OUT/ns_per_task.png"
fi
