#!/bin/bash
# s2: keepalive probes meeting a NAT that forgot the flow.
#  redis: redis-server (tcp-keepalive 6) behind... the server's probe goes to the NAT's outside address, whose stack resets it
#  cka:   client keepalive 5s/1s/3 through the NAT in reset mode (nft reject with tcp reset)
cd /tmp/ktv; variant=${1:-redis}; OUT=/tmp/ktv/out-s2-$variant; rm -rf $OUT; . ./common.sh
./lab.sh down; ./lab.sh up reset 3 >/dev/null
bpftrace order.bt > $OUT/order.txt 2>/dev/null & PIDS+=($!); waitline order Attaching 20
export KATRACE_RAWDUMP=$OUT/raw.ndjson; kstart k.json /tmp/ktv/katrace-raw -o json --all --states --addr 10.213.230.0/23; unset KATRACE_RAWDUMP
kstart k.txt $KT --addr 10.213.230.0/23
kstart kdef.json $KT -o json --addr 10.213.230.0/23
ip netns exec ktvc tcpdump -ni vktvc -tt tcp > $OUT/tcpdump-client.txt 2>/dev/null & PIDS+=($!)
ip netns exec ktvs tcpdump -ni vktvs -tt tcp > $OUT/tcpdump-server.txt 2>/dev/null & PIDS+=($!)
if [ $variant = redis ]; then
  ip netns exec ktvs redis-server --port 6390 --bind 10.213.231.2 --tcp-keepalive 6 --save '' --appendonly no --protected-mode no --daemonize no --logfile $OUT/redis.log --dir $OUT & PIDS+=($!)
  for i in $(seq 1 50); do ip netns exec ktvs ss -tln | grep -q 6390 && break; sleep 0.1; done
  helper ktvc tclient cli 10.213.231.2 6390; port=6390
else
  helper ktvs server srv 10.213.231.2 7002 hold; waitline srv listening
  helper ktvc tclient cli 10.213.231.2 7002 ka=5s/1s/3; port=7002
fi
lp=$(waitline cli connected | awk '{print $2}'); echo lport=$lp
[ $variant = redis ] && { tell cli ping; waitline cli got; }
( for i in $(seq 1 60); do echo "== $(date +%T.%N)"; ip netns exec ktvs ss -tonie state all "sport = :$port" 2>/dev/null | tail -n +2; ip netns exec ktvc ss -tonie state all "sport = :$lp" 2>/dev/null| tail -n +2; sleep 0.25; done ) > $OUT/ss.txt &
if [ $variant = redis ]; then
  # wait until redis' socket is gone (reset by the NAT's answer to its probe)
  for i in $(seq 1 150); do ip netns exec ktvs ss -tn state established "sport = :6390" | grep -q 6390 || break; sleep 0.1; done
  echo "redis socket gone at $(date +%T.%N)"; sleep 1
  tell cli ping; waitline cli "error|got" 10
else
  tell cli wait; waitline cli "error|eof" 30
fi
ip netns exec ktvm nft list ruleset | grep counter
sleep 1; stopall; ./lab.sh down
echo "--- json"; cat $OUT/k.json; echo "--- default json"; cat $OUT/kdef.json; echo "--- text"; cat $OUT/k.txt; echo "--- order"; grep -v "ERROR_REPORT.*err=\(32\|111\)" $OUT/order.txt
