// Command idleconns holds many idle loopback TCP connections open, for
// katrace's memory benchmark. One process holds one end of each: run
// `idleconns -serve ADDR -n N` and `idleconns -dial ADDR -n N`. Each prints
// "ready" once its N connections are up and holds them until its standard
// input closes. A process's RLIMIT_NOFILE caps N; run more pairs for more.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

func main() {
	serve := flag.String("serve", "", "listen on `ADDR` and accept n connections")
	dial := flag.String("dial", "", "open n connections to `ADDR`")
	from := flag.String("from", "", "local IP to dial from")
	n := flag.Int("n", 1000, "connections")
	flag.Parse()

	var conns []net.Conn
	switch {
	case *serve != "":
		lc := net.ListenConfig{KeepAlive: -1}
		ln, err := lc.Listen(context.Background(), "tcp4", *serve)
		if err != nil {
			fail(err)
		}
		fmt.Println("listening", ln.Addr())
		for len(conns) < *n {
			c, err := ln.Accept()
			if err != nil {
				fail(err)
			}
			conns = append(conns, c)
		}
		ln.Close()
	case *dial != "":
		// Idle connections: no keepalive (Go turns it on by default).
		d := net.Dialer{KeepAlive: -1, Timeout: 10 * time.Second}
		if *from != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(*from)}
		}
		for len(conns) < *n {
			c, err := d.Dial("tcp4", *dial)
			if err != nil {
				fail(fmt.Errorf("after %d connections: %w", len(conns), err))
			}
			conns = append(conns, c)
		}
	default:
		fail(fmt.Errorf("want -serve or -dial"))
	}
	fmt.Println("ready", len(conns))
	_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
	for _, c := range conns {
		c.Close()
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "idleconns:", err)
	os.Exit(1)
}
