// Command churn is katrace's loopback connection-churn load generator: it
// runs a server and client goroutines on 127.0.0.1 for a fixed time and
// prints the connections completed per second (one JSON object with -json).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/katrace/katrace/bench/churn"
)

func main() {
	clients := flag.Int("clients", 4, "client goroutines, one connection at a time each")
	dur := flag.Duration("duration", 3*time.Second, "measured time")
	warmup := flag.Duration("warmup", 300*time.Millisecond, "unmeasured time before")
	addr := flag.String("addr", "127.0.0.1:0", "server listen address")
	asJSON := flag.Bool("json", false, "print the result as JSON")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, err := churn.Run(ctx, churn.Config{Addr: *addr, Clients: *clients, Duration: *dur, Warmup: *warmup})
	if err != nil {
		fmt.Fprintln(os.Stderr, "churn:", err)
		os.Exit(1)
	}
	if *asJSON {
		_ = json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	fmt.Printf("%d connections in %v: %.0f/s (%d errors)\n", r.Conns, r.Elapsed.Round(time.Millisecond), r.PerSec, r.Errors)
}
