#!/bin/bash
# s3: a server that says goodbye, then closes: PostgreSQL idle_session_timeout (pg) or the Go goodbye helper (go)
cd /tmp/ktv; variant=${1:-pg}; OUT=/tmp/ktv/out-s3-$variant; rm -rf $OUT; . ./common.sh
./lab.sh down; ./lab.sh up drop 120 >/dev/null
bpftrace order.bt > $OUT/order.txt 2>/dev/null & PIDS+=($!); waitline order Attaching 20
export KATRACE_RAWDUMP=$OUT/raw.ndjson; kstart k.json /tmp/ktv/katrace-raw -o json --all --states --addr 10.213.230.0/23; unset KATRACE_RAWDUMP
kstart k.txt $KT --addr 10.213.230.0/23
kstart kdef.json $KT -o json --addr 10.213.230.0/23
ip netns exec ktvs tcpdump -ni vktvs -tt -A tcp > $OUT/tcpdump-server.txt 2>/dev/null & PIDS+=($!)
if [ $variant = pg ]; then
  ip netns exec ktvs su postgres -c "/usr/lib/postgresql/15/bin/pg_ctl -w -t 20 -D /tmp/ktv/pg -l /tmp/ktv/pglog/pg.log -o '-c listen_addresses=10.213.231.2 -p 5440 -k /tmp/ktv/pgsock -c idle_session_timeout=3s' start" > /dev/null
  rm -f $OUT/psql.in; mkfifo $OUT/psql.in
  ( exec 3<>$OUT/psql.in; exec ip netns exec ktvc psql -h 10.213.231.2 -p 5440 -U postgres -X -At <&3 > $OUT/psql.out 2>&1 ) & PIDS+=($!)
  echo "select 'one';" > $OUT/psql.in; waitline psql one 10
  date +%T.%N; sleep 4.5
  echo "select 'two';" > $OUT/psql.in; sleep 1.5; cat $OUT/psql.out
  ip netns exec ktvs su postgres -c "/usr/lib/postgresql/15/bin/pg_ctl -D /tmp/ktv/pg stop" > /dev/null
else
  helper ktvs goodbye srv 10.213.231.2 7003 3s 116; waitline srv listening
  helper ktvc tclient cli 10.213.231.2 7003; lp=$(waitline cli connected | awk '{print $2}'); echo lport=$lp
  tell cli ping; waitline cli got
  waitline srv goodbye 10; sleep 0.3
  tell cli ping; waitline cli "error|got" 10
fi
sleep 1; stopall; ./lab.sh down
echo "--- json"; cat $OUT/k.json; echo "--- default json"; cat $OUT/kdef.json; echo "--- text"; cat $OUT/k.txt; echo "--- order"; grep -v "ERROR_REPORT.*err=\(32\|111\)" $OUT/order.txt
