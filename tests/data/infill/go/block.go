package store

import (
	"errors"
	"sync"
)

var ErrMissing = errors.New("missing")

type Store struct {
	mu   sync.Mutex
	data map[string]int
}

func (s *Store) Size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.data)
}

func (s *Store) Get(key string) (int, error) {
	<CURSOR>
}
