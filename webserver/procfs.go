package webserver

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// readPIDFile returns the pid nginx wrote to path.
func readPIDFile(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("pid file %s: bad contents %q", path, data)
	}
	return pid, nil
}

// procStat is the part of /proc/<pid>/stat this package needs.
type procStat struct {
	state byte // R, S, D, Z, X, ...
	ppid  int
	pgrp  int
}

// readProcStat parses /proc/<pid>/stat. The command name is in parentheses
// and may contain spaces, so fields are counted from the last ')'.
func readProcStat(pid int) (procStat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	if err := errors.Join(err1, err2); err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return procStat{state: f[0][0], ppid: ppid, pgrp: pgrp}, nil
}

// processAlive reports whether pid exists and is not a zombie. Without
// /proc it falls back to kill(pid, 0).
func processAlive(pid int) bool {
	st, err := readProcStat(pid)
	if err == nil {
		return st.state != 'Z' && st.state != 'X'
	}
	if errors.Is(err, os.ErrNotExist) {
		if _, statErr := os.Stat("/proc/self/stat"); statErr == nil {
			return false // /proc works, so the process is gone
		}
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// readCmdline returns /proc/<pid>/cmdline with NULs turned into spaces.
// nginx rewrites it to e.g. "nginx: master process /usr/sbin/nginx -p ...".
func readCmdline(pid int) (string, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(strings.ReplaceAll(string(data), "\x00", " ")), nil
}

// childPIDs lists the live children of ppid by scanning /proc (the
// /proc/<pid>/task/<tid>/children file is not available on every kernel).
func childPIDs(ppid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readProcStat(pid); err == nil && st.ppid == ppid && st.state != 'Z' {
			pids = append(pids, pid)
		}
	}
	return pids
}

// isMasterOf reports whether pid is an nginx master started with confPath:
// its command line says "master process" and has confPath as an argument.
func isMasterOf(pid int, confPath string) bool {
	cmd, err := readCmdline(pid)
	if err != nil || !strings.Contains(cmd, "master process") {
		return false
	}
	for _, arg := range strings.Fields(cmd) {
		if arg == confPath {
			return true
		}
	}
	return false
}
