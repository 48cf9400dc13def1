// Package churn is katrace's connection-churn load: a loopback server and
// client goroutines that connect, exchange 16 bytes each way and let the
// server close first, as fast as they can. Every connection makes about ten
// TCP state changes (five per end), which is the tracer's hot path.
package churn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Config says how to churn.
type Config struct {
	// Addr is the server's listen address; port 0 picks one.
	Addr string
	// Clients is the number of client goroutines, each one connection at a
	// time.
	Clients int
	// Duration of the measured run.
	Duration time.Duration
	// Warmup runs before the measurement starts and is not counted.
	Warmup time.Duration
}

// Result is what a run did.
type Result struct {
	Conns uint64 `json:"conns"`
	// Total counts the warm-up and the last connections too.
	Total   uint64        `json:"total_conns"`
	Errors  uint64        `json:"errors"`
	Elapsed time.Duration `json:"elapsed_ns"`
	PerSec  float64       `json:"conns_per_sec"`
}

const payload = 16

// Run runs the server and the clients for cfg.Warmup+cfg.Duration and
// counts the connections completed in the measured part.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Clients <= 0 {
		cfg.Clients = 4
	}
	ln, err := net.Listen("tcp4", cfg.Addr)
	if err != nil {
		return Result{}, err
	}
	defer ln.Close()
	go serve(ln)

	var (
		counting atomic.Bool
		conns    atomic.Uint64
		total    atomic.Uint64
		errs     atomic.Uint64
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	addr := ln.Addr().String()
	for i := 0; i < cfg.Clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64)
			msg := make([]byte, payload)
			for !stop.Load() {
				if err := once(addr, msg, buf); err != nil {
					if counting.Load() {
						errs.Add(1)
					}
					continue
				}
				total.Add(1)
				if counting.Load() {
					conns.Add(1)
				}
			}
		}()
	}
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	ok := wait(cfg.Warmup)
	start := time.Now()
	counting.Store(true)
	if ok {
		ok = wait(cfg.Duration)
	}
	counting.Store(false)
	elapsed := time.Since(start)
	n, e := conns.Load(), errs.Load()
	stop.Store(true)
	wg.Wait()
	if !ok {
		return Result{}, ctx.Err()
	}
	r := Result{Conns: n, Total: total.Load(), Errors: e, Elapsed: elapsed, PerSec: float64(n) / elapsed.Seconds()}
	if n == 0 {
		return r, fmt.Errorf("no connection completed (%d errors)", e)
	}
	return r, nil
}

// once is one client connection: connect, send 16 bytes, read the 16-byte
// answer, wait for the server's FIN, close.
func once(addr string, msg, buf []byte) error {
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write(msg); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf[:payload]); err != nil {
		return err
	}
	// The server closes first: wait for its FIN.
	if n, err := c.Read(buf); n != 0 || !errors.Is(err, io.EOF) {
		return fmt.Errorf("want EOF, got %d bytes, %v", n, err)
	}
	return nil
}

func serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			buf := make([]byte, payload)
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			_, _ = c.Write(buf)
		}()
	}
}
