package sockets

// The socket iterator, compiled for the targets we ship (amd64, arm64).
// Needs clang-16 and libbpf-dev: run `make generate`.
//go:generate go tool bpf2go -cc clang-16 -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type socket_row -type socket_kind -type socket_timer -type socket_row_flags sockets ../bpf/sockets.bpf.c -- -I../bpf
