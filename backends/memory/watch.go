package memory

import (
	"context"
	"fmt"

	"github.com/berthdev/berth/backends"
)

// subscriber is one Watch call's queue. Its fields are guarded by
// Backend.mu.
type subscriber struct {
	queue []backends.Event
	wake  chan struct{} // buffered; holds a token when queue may be non-empty
}

// Watch implements backends.Watcher. It reports the backend's own changes
// and those made by StopExternally and its kin. While the engine is lost
// (SetDown(true) or Freeze) it reports EventDaemonLost, drops instance
// events as a real watcher would miss them, and reports EventDaemonBack
// when the engine is back. A Watch that starts while the engine is lost
// begins with EventDaemonLost. fn runs on the caller's goroutine; the queue
// between the engine and fn is unbounded, so a slow fn never blocks the
// engine.
func (b *Backend) Watch(ctx context.Context, fn func(backends.Event)) error {
	s := &subscriber{wake: make(chan struct{}, 1)}
	b.mu.Lock()
	b.calls["Watch"]++
	if b.lostLocked() {
		s.queue = append(s.queue, backends.Event{Kind: backends.EventDaemonLost})
		s.wake <- struct{}{}
	}
	b.subs[s] = struct{}{}
	close(b.subsAdded)
	b.subsAdded = make(chan struct{})
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.subs, s)
		b.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.wake:
		}
		b.mu.Lock()
		queue := s.queue
		s.queue = nil
		b.mu.Unlock()
		for _, e := range queue {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fn(e)
		}
	}
}

// publishLocked queues e for every watcher. Instance events are dropped
// while the engine is lost.
func (b *Backend) publishLocked(e backends.Event) {
	if e.ID != "" && b.lostLocked() {
		return
	}
	for s := range b.subs {
		s.queue = append(s.queue, e)
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// WaitWatchers blocks until at least n Watch calls are subscribed, so that
// a test can make a change knowing a watcher will see it, or until ctx
// ends.
func (b *Backend) WaitWatchers(ctx context.Context, n int) error {
	for {
		b.mu.Lock()
		have, added := len(b.subs), b.subsAdded
		b.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-added:
		case <-ctx.Done():
			return fmt.Errorf("memory: %d of %d watchers: %w", have, n, ctx.Err())
		}
	}
}
