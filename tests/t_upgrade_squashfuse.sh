#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# t_upgrade.sh with images read through libsquashfuse instead of kernel squashfs.
BACKEND=squashfuse exec bash "$(dirname "$0")/t_upgrade.sh"
