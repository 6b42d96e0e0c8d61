#!/bin/bash
# t_acl.sh with images read through libsquashfuse instead of kernel squashfs.
BACKEND=squashfuse exec bash "$(dirname "$0")/t_acl.sh"
