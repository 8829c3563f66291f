package e2e

import "syscall"

// procAttr has the kernel kill a child when the test binary dies (a panic, a -timeout), so that no
// streamhouse process outlives the test run even when no Cleanup ran.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
