#!/bin/bash
# s1: TCP_USER_TIMEOUT 3s (ut) or tcp_retries2 (r2) client, write after NAT forgot the flow (drop)
cd /tmp/ktv; variant=${1:-ut}; OUT=/tmp/ktv/out-s1-$variant; rm -rf $OUT; . ./common.sh
./lab.sh down; ./lab.sh up drop 3 >/dev/null
[ $variant = r2 ] && ip netns exec ktvc sysctl -qw net.ipv4.tcp_retries2=3
bpftrace order.bt > $OUT/order.txt 2>/dev/null & PIDS+=($!); waitline order Attaching 20
export KATRACE_RAWDUMP=$OUT/raw.ndjson; kstart k.json /tmp/ktv/katrace-raw -o json --all --states --addr 10.213.230.0/23; unset KATRACE_RAWDUMP
kstart k.txt $KT --addr 10.213.230.0/23
kstart kdef.json $KT -o json --addr 10.213.230.0/23
ip netns exec ktvc tcpdump -ni vktvc -tt tcp > $OUT/tcpdump.txt 2>/dev/null & PIDS+=($!)
helper ktvs server srv 10.213.231.2 7001 echo; waitline srv listening
ip netns exec ktvc nstat -n
opts=""; [ $variant = ut ] && opts="ut=3s"
helper ktvc tclient cli 10.213.231.2 7001 $opts; lp=$(waitline cli connected | awk '{print $2}'); echo lport=$lp
tell cli ping; waitline cli got
for i in $(seq 1 100); do ip netns exec ktvm conntrack -L -p tcp 2>/dev/null | grep -q "sport=$lp" || break; sleep 0.2; done
echo "forgotten at $(date +%T.%N)"
date +%s.%N > $OUT/t_write; tell cli ping
( for i in $(seq 1 40); do ip netns exec ktvc ss -tonpei state all 2>/dev/null "sport = :$lp" | tail -n +2; sleep 0.25; done ) > $OUT/ss.txt &
waitline cli error 30; date +%s.%N > $OUT/t_err
ip netns exec ktvc nstat > $OUT/nstat.txt
ip netns exec ktvm nft list ruleset | grep counter
sleep 1; stopall; ./lab.sh down
echo "--- json"; cat $OUT/k.json; echo "--- default json"; cat $OUT/kdef.json; echo "--- text"; cat $OUT/k.txt; echo "--- order"; cat $OUT/order.txt; echo "--- tcpdump"; cat $OUT/tcpdump.txt; echo "--- nstat"; grep -i "timeout\|Retrans\|abort" $OUT/nstat.txt
echo "write at $(cat $OUT/t_write) err at $(cat $OUT/t_err)"
