#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Runs a command where no memory may be writable and executable, as SELinux
without `execmem` or systemd's MemoryDenyWriteExecute=yes enforce it: a
seccomp filter refuses mmap with PROT_WRITE|PROT_EXEC and any mprotect or
pkey_mprotect that adds PROT_EXEC. Needs python3-seccomp.
Usage: wx_jail.py COMMAND [ARG...]"""
import errno
import os
import sys

import seccomp

PROT_WRITE = 0x2
PROT_EXEC = 0x4

jail = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
both = PROT_WRITE | PROT_EXEC
jail.add_rule(seccomp.ERRNO(errno.EACCES), "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, both, both))
jail.add_rule(seccomp.ERRNO(errno.EACCES), "mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
jail.add_rule(seccomp.ERRNO(errno.EACCES), "pkey_mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
jail.load()
os.execvp(sys.argv[1], sys.argv[1:])
