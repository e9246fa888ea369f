package hot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// State is what the state file holds: the pins and the long-term
// statistics. (The sliding window is not kept: after a restart it fills
// again within one window.)
type State struct {
	Version int         `json:"version"`
	Saved   time.Time   `json:"saved"`
	Pins    []int64     `json:"pins"`
	Hour    periodState `json:"hour"`
	Day     periodState `json:"day"`
}

const stateVersion = 1

// state returns the statistics as the state file holds them.
func (s *Stats) state() (hour, day periodState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hour.state(), s.day.state()
}

// load replaces the statistics with a state file's, rolled to now.
func (s *Stats) load(hour, day periodState, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hour.load(hour, now)
	s.day.load(day, now)
}

// WriteState writes st to path atomically: a temporary file in the same
// directory, synced, then renamed over path.
func WriteState(path string, st State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("hot: encode state: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("hot: state dir: %w", err)
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("hot: state temp file: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("hot: write state %s: %w", path, err)
	}
	return nil
}

// ErrNoState is ReadState's answer when the file does not exist.
var ErrNoState = errors.New("no state file")

// ReadState reads a state file written by WriteState.
func ReadState(path string) (State, error) {
	var st State
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, fmt.Errorf("hot: %s: %w", path, ErrNoState)
	}
	if err != nil {
		return st, fmt.Errorf("hot: read state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return State{}, fmt.Errorf("hot: state %s: %w", path, err)
	}
	if st.Version != stateVersion {
		return State{}, fmt.Errorf("hot: state %s: version %d, want %d", path, st.Version, stateVersion)
	}
	for _, id := range st.Pins {
		if id < 1 {
			return State{}, fmt.Errorf("hot: state %s: bad pinned id %d", path, id)
		}
	}
	return st, nil
}
