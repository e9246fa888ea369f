package cli

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// lowerPriority sets the nice value of every thread of this process to
// nice, unless it is lower already. Linux keeps a nice value per thread,
// and a new thread inherits its creator's, so the threads the Go runtime
// starts later run at it too. Raising one's own nice value needs no
// privilege. A batch job run this way leaves the CPU to the page path
// first when the machine is busy (docs/preheat.md: the page p99 during a
// cold preheat fell by a fifth, the preheat's rate did not move).
func lowerPriority(nice int) error {
	if nice <= 0 {
		return nil
	}
	// A thread started meanwhile by one not yet lowered would keep its
	// creator's value: scan again until a pass changes nothing.
	for range 5 {
		changed, err := lowerThreads(nice)
		if err != nil || changed == 0 {
			return err
		}
	}
	return nil
}

// lowerThreads is one pass of lowerPriority; changed is how many threads
// it lowered.
func lowerThreads(nice int) (changed int, err error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, fmt.Errorf("nice: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		cur, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
		if err != nil {
			continue // the thread ended meanwhile
		}
		// The raw system call answers 20 - nice.
		if 20-cur >= nice {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); errors.Is(err, syscall.ESRCH) {
			continue // the thread ended meanwhile
		} else if err != nil {
			return changed, fmt.Errorf("nice %d, thread %d: %w", nice, tid, err)
		}
		changed++
	}
	return changed, nil
}
