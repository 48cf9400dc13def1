package tracer

// The kernel programs, compiled for the targets we ship (amd64, arm64).
// Needs clang-16 and libbpf-dev: run `make generate`.
//go:generate go tool bpf2go -cc clang-16 -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type event -type state_event -type state_batch -type event_batch -type event_kind -type event_flags -type fin_side -type sock_role -type proto katrace ../bpf/katrace.bpf.c -- -I../bpf
