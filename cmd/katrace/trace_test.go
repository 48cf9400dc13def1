package main

import (
	"context"
	"testing"
	"time"
)

func TestDurationCountsFromStart(t *testing.T) {
	const d = 100 * time.Millisecond
	ctx, started, cancel := durationFromStart(context.Background(), d)
	defer cancel()

	// Attaching takes three times the duration asked for: the trace must
	// still be running when it starts.
	select {
	case <-ctx.Done():
		t.Fatal("--duration ran out before the start record")
	case <-time.After(3 * d):
	}

	begun := time.Now()
	started()
	started() // only the first call counts
	select {
	case <-ctx.Done():
		if ran := time.Since(begun); ran < d {
			t.Errorf("stopped %v after the start record, want at least %v", ran, d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("--duration never ended the trace")
	}
}

func TestDurationCancelBeforeStart(t *testing.T) {
	ctx, started, cancel := durationFromStart(context.Background(), time.Hour)
	cancel()
	started() // after cancel: must not arm a timer or panic
	if ctx.Err() == nil {
		t.Fatal("cancel did not end the context")
	}
}
