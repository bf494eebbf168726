# Sheepfold: one non-recursive makefile for sheep, collie, libsd, formats and tests.
#   make            build sheep and collie (build/)
#   make SANITIZE=1 the same with ASan+UBSan (build-san/)
#   make FAULT_INJECT=1  a test build whose sheep takes --fault-inject FILE (build-fi/)
#   make NO_CRC=1   a bench build that keeps the checksum table but computes no crc32c (build-nocrc/)
#   make check      unit + functional tests (one pass under sanitizers), fuzzers briefly
#   make fuzz       one libFuzzer binary per image driver (clang), build-fuzz/fuzz-NAME
#   make demo       start a local 3-node cluster and show it (make demo-stop stops it)
#   make bench      throughput figures against a local-disk peer, and NBD against qemu-nbd
#   make deps       install the Debian packages the build and tests need
#   make V=1        show full command lines

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
PKGS    := libcpg libcfg libquorum liburcu zlib libcurl libzstd libcrypto libnbd json-c libisal
# no pkg-config file for the ZooKeeper C client
ZK_LIBS := -lzookeeper_mt
TEST_PKGS := cunit

ifeq ($(SANITIZE),1)
BUILD   := build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD   := build
SANFLAGS :=
endif

# the test-only fault-injecting store layer (sheep/store/fault.c) exists in build-fi/ alone
ifeq ($(FAULT_INJECT),1)
BUILD   := build-fi
FAULT_FLAGS := -DSD_FAULT_INJECT
else
FAULT_FLAGS :=
endif
# for tests/bench/checksum only: its stores do not verify in any other build
ifeq ($(NO_CRC),1)
BUILD   := build-nocrc
FAULT_FLAGS += -DSD_BENCH_NO_CRC
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CUNIT_LIBS := $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null)

CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE \
           -D_FILE_OFFSET_BITS=64 -Iinclude $(PKG_CFLAGS) $(SANFLAGS) $(FAULT_FLAGS) -pthread -MMD -MP
LDFLAGS += $(SANFLAGS) -pthread
LDLIBS  := $(PKG_LIBS) $(ZK_LIBS) -lssl -lm

ifneq ($(V),1)
Q := @
quiet = @printf '  %-7s %s\n' $(1) $(2);
endif

LIB_SRCS     := $(sort $(wildcard lib/*.c))
FORMATS_SRCS := $(sort $(wildcard formats/*.c))
SHEEP_SRCS   := $(sort $(wildcard sheep/*.c sheep/store/*.c sheep/cluster/*.c))
ifneq ($(FAULT_INJECT),1)
SHEEP_SRCS   := $(filter-out sheep/store/fault.c,$(SHEEP_SRCS))
endif
COLLIE_SRCS  := $(sort $(wildcard collie/*.c))
UNIT_SRCS    := $(sort $(wildcard tests/unit/*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBSD      := $(BUILD)/libsd.a
LIBFORMATS := $(BUILD)/libsdformats.a
SHEEP      := $(BUILD)/sheep
COLLIE     := $(BUILD)/collie
UNIT       := $(BUILD)/unit-tests

.PHONY: all check check-unit check-functional check-long check-fuzz fuzz bench demo demo-stop deps install clean
all: $(SHEEP) $(COLLIE)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(call quiet,CC,$<)$(CC) $(CFLAGS) -c -o $@ $<

$(LIBSD): $(call obj,$(LIB_SRCS))
	$(call quiet,AR,$@)rm -f $@ && ar rcs $@ $^

$(LIBFORMATS): $(call obj,$(FORMATS_SRCS))
	$(call quiet,AR,$@)rm -f $@ && ar rcs $@ $^

$(SHEEP): $(call obj,$(SHEEP_SRCS)) $(LIBSD)
	$(call quiet,LINK,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# the driver table and the store table find their members through weak references, which do
# not pull objects out of an archive: link the formats library whole
WHOLE_FORMATS = -Wl,--whole-archive $(LIBFORMATS) -Wl,--no-whole-archive

$(COLLIE): $(call obj,$(COLLIE_SRCS)) $(LIBFORMATS) $(LIBSD)
	$(call quiet,LINK,$@)$(CC) $(LDFLAGS) -o $@ $(call obj,$(COLLIE_SRCS)) $(WHOLE_FORMATS) $(LIBSD) $(LDLIBS)

# the store's object file layout and its descriptor cache are tested on their own, without the
# daemon around them
UNIT_SHEEP_OBJS := $(call obj,sheep/store/checksum.c sheep/store/fdcache.c)

$(UNIT): $(call obj,$(UNIT_SRCS)) $(UNIT_SHEEP_OBJS) $(LIBFORMATS) $(LIBSD)
	$(call quiet,LINK,$@)$(CC) $(LDFLAGS) -o $@ $(call obj,$(UNIT_SRCS)) $(UNIT_SHEEP_OBJS) $(WHOLE_FORMATS) $(LIBSD) $(LDLIBS) $(CUNIT_LIBS)

# scenarios that also run with the ASan+UBSan build of sheep and collie
SAN_SCENARIOS := 001 002 004 005 006 007 019 028 040 042 043 044 045 046 047 070 073 075 080 082 083 085 194

# check: unit tests plain and under sanitizers, every functional scenario, then the
# sanitizer scenarios again with build-san binaries (any sanitizer report fails the run)
check: all $(UNIT)
	$(UNIT)
	$(MAKE) SANITIZE=1 all build-san/unit-tests
	build-san/unit-tests
	$(MAKE) FAULT_INJECT=1 build-fi/sheep
	tests/functional/check
	BUILD=$(CURDIR)/build-san tests/functional/check $(SAN_SCENARIOS)
	$(MAKE) check-fuzz

check-unit: $(UNIT)
	$(UNIT)

check-functional: all
	$(MAKE) FAULT_INJECT=1 build-fi/sheep
	tests/functional/check

check-long: all
	LONG=1 tests/functional/check
	$(MAKE) check-fuzz FUZZ_TIME=120

# ---- fuzzing: tests/fuzz/fuzz_image.c built once per driver file (formats/NAME.c defining
# fmt_NAME_driver) against the formats library and lib/, with ASan and UBSan
FUZZ_CC     ?= clang
FUZZ_BUILD  := build-fuzz
FUZZ_TIME   ?= 10
FUZZ_CFLAGS := -O1 -g -std=gnu11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Iinclude $(PKG_CFLAGS) -pthread \
               -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_DRIVERS = $(patsubst formats/%.c,%,$(shell grep -l '^const struct fmt_driver fmt_[a-z0-9_]*_driver' formats/*.c))
FUZZ_OBJS    = $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(FORMATS_SRCS) $(LIB_SRCS))

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(call quiet,FUZZCC,$<)$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -fsanitize=fuzzer-no-link -c -o $@ $<

.PRECIOUS: $(FUZZ_BUILD)/obj/%.o

$(FUZZ_BUILD)/fuzz-%: tests/fuzz/fuzz_image.c $(FUZZ_OBJS)
	$(call quiet,FUZZ,$@)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -DFUZZ_DRIVER='"$*"' -o $@ $< \
		$(FUZZ_OBJS) $(PKG_LIBS) -lm

fuzz:
	@command -v $(FUZZ_CC) >/dev/null || { echo "fuzz: $(FUZZ_CC) is not installed"; exit 1; }
	$(MAKE) $(addprefix $(FUZZ_BUILD)/fuzz-,$(FUZZ_DRIVERS))

# runs each fuzzer FUZZ_TIME seconds on its corpus; skipped without clang
check-fuzz:
	@if command -v $(FUZZ_CC) >/dev/null; then $(MAKE) fuzz && FUZZ_TIME=$(FUZZ_TIME) tests/fuzz/run; \
	 else echo "check-fuzz: $(FUZZ_CC) is not installed, skipped"; fi

# bench/checksum's measure of crc32c alone
$(BUILD)/bench-crc32c: tests/bench/crc32c_rate.c $(LIBSD)
	$(call quiet,LINK,$@)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBSD) $(LDLIBS)

EC_BENCH := $(BUILD)/ec-encode-bench
$(EC_BENCH): $(call obj,tests/bench/ec_encode_bench.c) $(LIBSD)
	$(call quiet,LINK,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

bench: all $(BUILD)/bench-crc32c $(EC_BENCH)
	tests/bench/ec
	tests/bench/run
	tests/bench/nbd
	tests/bench/recovery
	tests/bench/formats
	$(MAKE) NO_CRC=1 build-nocrc/sheep
	tests/bench/checksum

# the demo installs what the build needs before it builds, so it does not depend on all
demo:
	@tests/demo

demo-stop:
	@tests/demo --stop

deps:
	@tests/deps.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 755 $(SHEEP) $(DESTDIR)$(PREFIX)/sbin/sheep
	install -m 755 $(COLLIE) $(DESTDIR)$(PREFIX)/bin/collie
	install -m 644 man/sheep.8 man/collie.8 $(DESTDIR)$(PREFIX)/share/man/man8/

clean:
	@[ ! -d build/demo ] || tests/demo --stop
	rm -rf build build-san build-fi build-nocrc build-fuzz

-include $(shell find $(BUILD) $(FUZZ_BUILD) -name '*.d' 2>/dev/null)

# fuzz-nbd: libFuzzer harnesses for the NBD parsers and the sheep request header checks (clang).
#   make fuzz-nbd && build/fuzz/fuzz_nbd -max_total_time=60 && build/fuzz/fuzz_sheep_req -max_total_time=60
FUZZ_CC    ?= clang
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -std=gnu11 -D_GNU_SOURCE -Iinclude
.PHONY: fuzz-nbd
fuzz-nbd: build/fuzz/fuzz_nbd build/fuzz/fuzz_sheep_req
build/fuzz/fuzz_nbd: tests/fuzz/fuzz_nbd.c lib/nbd_proto.c include/nbd_proto.h
	@mkdir -p $(dir $@)
	$(call quiet,FUZZ,$@)$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz/fuzz_nbd.c lib/nbd_proto.c
build/fuzz/fuzz_sheep_req: tests/fuzz/fuzz_sheep_req.c lib/proto_check.c include/proto_check.h
	@mkdir -p $(dir $@)
	$(call quiet,FUZZ,$@)$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz/fuzz_sheep_req.c lib/proto_check.c

# fuzz-auth: libFuzzer harness for the connection authentication (sheep/access.c, lib/auth.c).
#   make fuzz-auth && build/fuzz/fuzz_auth -max_total_time=60 -max_len=4096 $(mktemp -d) tests/fuzz/corpus/auth
AUTH_FUZZ_SRCS := tests/fuzz/fuzz_auth.c sheep/access.c lib/auth.c lib/logger.c lib/net.c lib/util.c
.PHONY: fuzz-auth
fuzz-auth: build/fuzz/fuzz_auth
build/fuzz/fuzz_auth: $(AUTH_FUZZ_SRCS) include/auth.h sheep/access.h
	@mkdir -p $(dir $@)
	$(call quiet,FUZZ,$@)$(FUZZ_CC) $(FUZZ_FLAGS) -Isheep $(PKG_CFLAGS) -o $@ $(AUTH_FUZZ_SRCS) $(PKG_LIBS)
