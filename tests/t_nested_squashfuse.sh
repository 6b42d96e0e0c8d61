#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# t_nested.sh with images read through libsquashfuse instead of kernel squashfs.
BACKEND=squashfuse exec bash "$(dirname "$0")/t_nested.sh"
