package identity

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// TestReplace swaps the directory while resolves run: each sees the old
// or the new entries, and afterwards only the new ones count.
func TestReplace(t *testing.T) {
	const alice, bob = "0b1e1a7e-0000-4000-8000-00000000000a", "0b1e1a7e-0000-4000-8000-00000000000b"
	d := New(Options{Entries: map[string]string{"ext:1": alice}})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if id, err := d.Resolve(context.Background(), "t", "ext:1"); err != nil || (id != alice && id != bob) {
					t.Errorf("mid-swap resolve: %q %v", id, err)
					return
				}
			}
		}()
	}
	for range 100 {
		d.Replace(map[string]string{"EXT:1": bob, "ext:2": alice})
		d.Replace(map[string]string{"ext:1": alice})
	}
	d.Replace(map[string]string{"EXT:1": bob, "ext:2": alice})
	close(stop)
	wg.Wait()
	if id, _ := d.Resolve(context.Background(), "t", "ext:1"); id != bob {
		t.Fatalf("ext:1 = %q after Replace, want %q", id, bob)
	}
	d.Replace(nil)
	if _, err := d.Resolve(context.Background(), "t", "ext:2"); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("removed entry still resolves: %v", err)
	}
}
