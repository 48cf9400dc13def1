package primitives

// Compiled for the targets we ship, like the tracer's programs: run
// `make generate` (clang-16, libbpf-dev).
//go:generate go tool bpf2go -cc clang-16 -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 prim ../../bpf/primitives.bpf.c -- -I../../bpf
