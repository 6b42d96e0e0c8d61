# SPDX-License-Identifier: BSD-2-Clause
"""scripts/bench's code (its docstring says what each section measures).

    main            the command: options, the sections in order, the outputs
    config          sizes, the systems compared, the quick and full profiles
    runner          logging, commands, processes, mounts, loop devices, FUSE
                    tracing (Env, FuseTrace), rclone processes and rc calls (Rcd)
    inputs          the cached images and sources, the compiled helper (Inputs)
    bench           Bench, the context each section receives: options, profile,
                    Env, inputs, results, and the mounts and builds several share
    s1_mount_ready .. s14_acl
                    one module per section: its measuring code
    report          report() (the table, one writer per section), the targets,
                    the markdown and JSON files
    rep_sections    the rows of sections 1-5 and 7-9; rep_remote those of section 6
    rep_format      formatting and pairwise ratios; chart: the gnuplot chart
"""
