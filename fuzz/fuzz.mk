# SPDX-License-Identifier: BSD-2-Clause
# The libFuzzer targets, built by scripts/fuzz only (never by automake, whose
# libraries are compiled with gcc and without the fuzzer's instrumentation):
# clang compiles the project sources each target needs, with the harness,
# straight into OUT.
#   make -f fuzz/fuzz.mk SRC=<source tree> OUT=<scratch dir> [TARGETS...]
SRC ?= .
OUT ?= _build/fuzz
CC = clang
PKG_CONFIG ?= pkg-config

TARGETS = options map record store rclone bpf_event sqfs cards trust listing mountinfo access \
	workingset control http handover snapshot restart kept

# The project's warnings, and every sanitizer report is a crash (UBSan
# otherwise prints and carries on).
SAN = -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
CFLAGS = -std=gnu11 -g -O1 $(SAN) -Wall -Wextra -Wshadow -Wformat=2 -Wno-unused-parameter -Werror \
	-pthread
# config.h is ours (made below), and must win over libsquashfuse's own.
CPPFLAGS = -I$(OUT)/include -I$(SRC)
LDFLAGS = $(SAN) -pthread

pc = $(shell $(PKG_CONFIG) --$(1) $(2))

options_SRCS = fs/options.c common/error.c common/netaddr.c
options_PKGS = fuse3
map_SRCS = fscore/map.c common/names.c
map_PKGS = zlib
record_SRCS = cache/store/record.c
record_PKGS = zlib
STORE_SRCS = common/error.c common/sched.c cache/store/store.c cache/store/dir.c cache/store/table.c cache/store/record.c cache/store/digest.c cache/store/fill.c \
	cache/store/index.c cache/store/load.c
store_SRCS = $(STORE_SRCS)
store_PKGS = zlib libcrypto
rclone_SRCS = common/error.c common/sched.c cache/rclone/rclone.c cache/rclone/rclone_entry.c cache/rclone/rclone_rc.c cache/rclone/rclone_rcd.c \
	cache/rclone/rclone_spawn.c cache/rclone/rclone_get.c
rclone_PKGS = json-c libcurl
bpf_event_SRCS = bpf/tracker_event.c bpf/tracker_kind.c
sqfs_SRCS = images/sqfs.c images/superblock.c common/error.c
sqfs_PKGS = squashfuse
cards_SRCS = images/cards.c common/names.c
trust_SRCS = images/trust.c common/names.c
trust_PKGS = libcrypto
listing_SRCS = cache/listing_json.c
listing_PKGS = json-c
mountinfo_SRCS = common/mountpoint.c common/names.c common/error.c
access_SRCS = common/access.c common/caller.c
workingset_SRCS = fscore/workingset.c
control_SRCS = control/request.c
http_SRCS = control/http_parse.c common/netaddr.c
handover_SRCS = upgrade/handover.c upgrade/head.c
snapshot_SRCS = upgrade/snapline.c upgrade/handover.c
restart_SRCS = upgrade/keeper_msg.c
kept_SRCS = upgrade/nodes.c upgrade/slots.c upgrade/region.c upgrade/inflight.c common/log.c

all: $(TARGETS)

$(OUT)/include/config.h:
	@mkdir -p $(@D)
	@printf '%s\n' '/* The fuzz build: what AC_USE_SYSTEM_EXTENSIONS would say. */' \
		'#define _GNU_SOURCE 1' '#define _ALL_SOURCE 1' '#define __EXTENSIONS__ 1' \
		'#define _POSIX_PTHREAD_SEMANTICS 1' '#define PACKAGE_VERSION "fuzz"' >$@

# One object per source and target: each target gets its own package flags.
define target_rules
$(1)_OBJS = $$(patsubst %.c,$(OUT)/obj/$(1)/%.o,$$($(1)_SRCS) fuzz/$(1).c)
$(1)_CFLAGS := $$(if $$($(1)_PKGS),$$(call pc,cflags,$$($(1)_PKGS)))
$(1)_LIBS := $$(if $$($(1)_PKGS),$$(call pc,libs,$$($(1)_PKGS)))

$(OUT)/obj/$(1)/%.o: $(SRC)/%.c $(OUT)/include/config.h
	@mkdir -p $$(@D)
	@echo "  CC      $$*.c ($(1))"
	@$(CC) $(CPPFLAGS) $$($(1)_CFLAGS) $(CFLAGS) -MMD -MP -c $$< -o $$@

$(OUT)/bin/fuzz_$(1): $$($(1)_OBJS)
	@mkdir -p $$(@D)
	@echo "  CCLD    fuzz_$(1)"
	@$(CC) $(LDFLAGS) $$^ $$($(1)_LIBS) -o $$@

$(1): $(OUT)/bin/fuzz_$(1)
.PHONY: $(1)
-include $$($(1)_OBJS:.o=.d)
endef
$(foreach t,$(TARGETS),$(eval $(call target_rules,$(t))))

.PHONY: all
