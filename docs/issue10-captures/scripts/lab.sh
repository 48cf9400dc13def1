#!/bin/bash
# lab.sh up|down [drop|reset] [ct_timeout]
set -e
if [ "$1" = down ]; then
  for n in ktvc ktvm ktvs; do ip netns del $n 2>/dev/null || true; done; exit 0
fi
mode=${2:-drop}; cto=${3:-5}
for n in ktvc ktvm ktvs; do ip netns add $n; ip -n $n link set lo up; done
ip link add vktvc netns ktvc type veth peer name vktvmc netns ktvm
ip link add vktvs netns ktvs type veth peer name vktvms netns ktvm
ip -n ktvc addr add 10.213.230.1/24 dev vktvc; ip -n ktvc link set vktvc up
ip -n ktvm addr add 10.213.230.2/24 dev vktvmc; ip -n ktvm link set vktvmc up
ip -n ktvm addr add 10.213.231.1/24 dev vktvms; ip -n ktvm link set vktvms up
ip -n ktvs addr add 10.213.231.2/24 dev vktvs; ip -n ktvs link set vktvs up
ip -n ktvc route add default via 10.213.230.2
ip -n ktvs route add default via 10.213.231.1
ip netns exec ktvm sysctl -qw net.ipv4.ip_forward=1
if [ $mode = reset ]; then verdict="reject with tcp reset"; else verdict="drop"; fi
ip netns exec ktvm nft -f - <<NFT
table ip ktv {
  chain forward { type filter hook forward priority 0; policy accept;
    ct state new tcp flags & (syn|ack|rst) != syn counter $verdict
  }
  chain postrouting { type nat hook postrouting priority 100; oifname "vktvms" masquerade; }
}
NFT
ip netns exec ktvm sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_established=$cto
ip netns exec ktvm sysctl -qw net.netfilter.nf_conntrack_tcp_loose=1
echo up
