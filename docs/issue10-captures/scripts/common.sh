# sourced: helpers for reproduction
KT=/work/wt/verdicts/bin/katrace
E2E=/tmp/ktv/e2e.test
OUT=${OUT:-/tmp/ktv/out}; mkdir -p $OUT
PIDS=()
helper() { # ns role fifo-name args...
  local ns=$1 role=$2 name=$3; shift 3
  rm -f $OUT/$name.in; mkfifo $OUT/$name.in
  ( exec 3<>$OUT/$name.in; KATRACE_E2E_HELPER=$role KATRACE_E2E_HELPER_ARGS="$*" exec ip netns exec $ns $E2E <&3 > $OUT/$name.out 2>&1 ) &
  PIDS+=($!)
}
tell() { echo "$2" > $OUT/$1.in; }
waitline() { # name regex timeout (file $OUT/name.out, or $OUT/name.txt)
  local i; for i in $(seq 1 $((${3:-10}*10))); do for f in $OUT/$1.out $OUT/$1.txt; do grep -qE "$2" $f 2>/dev/null && { grep -E "$2" $f | tail -1; return 0; }; done; sleep 0.1; done; echo "TIMEOUT waiting $1 $2"; return 1; }
katrace_start() { # name args
  local name=$1; shift
  $KT trace "$@" > $OUT/$name 2>$OUT/$name.err & PIDS+=($!)
  local i; for i in $(seq 1 300); do grep -q '"type":"start"\|katrace\b.*start\|tracing' $OUT/$name 2>/dev/null && return 0; [ -s $OUT/$name ] && return 0; sleep 0.1; done
}
stopall() { for p in "${PIDS[@]}"; do kill -INT $p 2>/dev/null; done; sleep 1; for p in "${PIDS[@]}"; do kill $p 2>/dev/null; done; wait 2>/dev/null; PIDS=(); }
kstart() { # outfile bin args... ; retries until the start line appears
  local out=$1 bin=$2; shift 2
  local try
  for try in 1 2 3; do
    $bin trace "$@" > $OUT/$out 2>$OUT/$out.err & local pid=$!
    local i; for i in $(seq 1 100); do
      if grep -q '"type":"start"\|tracing with' $OUT/$out 2>/dev/null; then PIDS+=($pid); return 0; fi
      kill -0 $pid 2>/dev/null || break; sleep 0.1; done
    echo "katrace start failed ($try): $(cat $OUT/$out.err)" >&2; kill $pid 2>/dev/null; wait $pid 2>/dev/null
  done
}
