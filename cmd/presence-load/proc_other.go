//go:build !linux

package main

import "os/exec"

// dieWithParent does nothing where the kernel can not kill a child with
// its parent; stop ends the children of a run that finishes.
func dieWithParent(*exec.Cmd) {}
