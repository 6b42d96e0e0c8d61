#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
exit 77
