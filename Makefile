# corral - reverse-proxy HTTP gateway.
#
#   make            build build/corral
#   make run        install deps if missing, build, run the demo (conf/corral.yaml)
#   make test       install deps if missing, build, run unit + integration tests
#   make SANITIZE=address test    the same under ASan+UBSan with libc malloc
#   make V=1        print full command lines
#   make fuzz       build the libFuzzer targets and run each FUZZ_SECONDS (60)
#   make deb        build the Debian package into build/ (packaging/debian)
#   make install    PREFIX=/usr/local DESTDIR= : binaries, man pages, completion,
#                   /etc/corral/corral.yaml (packaging/corral.yaml)
#   make bench      install the bench tools if missing, build, run bench/run.sh
#                   (QUICK=1: a short pinned run; bench/README.md)

CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build

CFLAGS  ?= -O2 -g
CFLAGS  += $(EXTRA_CFLAGS)
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wpointer-arith
CPPFLAGS += -I. -D_GNU_SOURCE
LLHTTP_SRC_DIR ?= /usr/share/llhttp
LLHTTP_INC_DIR ?= /usr/share/include/llhttp
CPPFLAGS += -I$(LLHTTP_INC_DIR)

MALLOC ?= jemalloc
ifeq ($(SANITIZE),address)
  MALLOC   := libc      # ASan must own malloc; jemalloc would hide bugs
  CFLAGS   += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=undefined
  LDFLAGS  += -fsanitize=address,undefined
endif

PKGS    := libevent yaml-0.1
ifeq ($(MALLOC),jemalloc)
  PKGS  += jemalloc
  MALLOC_DEFS := -DCR_JEMALLOC    # not for the fuzz build, which has no jemalloc
endif
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(MALLOC_DEFS)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null)

ifeq ($(V),1)
  Q :=
else
  Q := @
endif

# Debian packages the build, the tests and the demo need.
DEB_PKGS := gcc make pkg-config libevent-dev libyaml-dev libjemalloc-dev \
            libcmocka-dev node-llhttp curl python3 iproute2 procps tmux prometheus \
            clang libclang-rt-14-dev debhelper dpkg-dev lintian man-db groff-base \
            adduser passwd util-linux

# What `make bench` needs on top (bench/README.md); `make test` does not.
BENCH_PKGS := wrk nginx-light haproxy gnuplot-nox linux-perf util-linux

CONF_SRC    := $(wildcard conf/*.c)
GW_SRC      := $(filter-out gateway/main.c,$(wildcard gateway/*.c))
SHM_SRC     := $(wildcard shm/*.c)
CTL_SRC     := $(wildcard ctl/*.c)
LLHTTP_SRC  := api.c http.c llhttp.c

CONF_OBJ    := $(CONF_SRC:%.c=$(BUILD)/%.o)
GW_OBJ      := $(GW_SRC:%.c=$(BUILD)/%.o)
SHM_OBJ     := $(SHM_SRC:%.c=$(BUILD)/%.o)
CTL_OBJ     := $(CTL_SRC:%.c=$(BUILD)/%.o)
LLHTTP_OBJ  := $(LLHTTP_SRC:%.c=$(BUILD)/llhttp/%.o)
LIB_OBJ     := $(CONF_OBJ) $(GW_OBJ) $(SHM_OBJ) $(LLHTTP_OBJ)

UNIT_SRC    := $(wildcard tests/unit/test_*.c)
UNIT_BIN    := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

# Objects depend on the flags they were built with, so switching SANITIZE
# rebuilds everything instead of mixing instrumented and plain objects.
FLAGS_FILE  := $(BUILD)/.flags
FLAGS_NOW   := $(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) $(MALLOC)

.PHONY: all deps bench-deps run test test-unit test-integration bench install clean FORCE \
        fuzz fuzz-build deb

all: $(BUILD)/corral $(if $(CTL_SRC),$(BUILD)/corralctl)

$(FLAGS_FILE): FORCE
	@mkdir -p $(BUILD)
	@echo '$(FLAGS_NOW)' | cmp -s - $@ || echo '$(FLAGS_NOW)' > $@

$(BUILD)/%.o: %.c $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC    $<")
	$(Q)$(CC) $(CFLAGS) $(WARN) $(CPPFLAGS) $(PKG_CFLAGS) -MMD -MP -c -o $@ $<

# llhttp's generated C is not ours: compile it with its own warnings.
$(BUILD)/llhttp/%.o: $(LLHTTP_SRC_DIR)/%.c $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC    llhttp/$(notdir $<)")
	$(Q)$(CC) $(CFLAGS) -w -I$(LLHTTP_INC_DIR) -c -o $@ $<

$(BUILD)/corral: $(BUILD)/gateway/main.o $(LIB_OBJ)
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BUILD)/corralctl: $(CTL_OBJ) $(SHM_OBJ) $(CONF_OBJ)
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJ) $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC    $<")
	$(Q)$(CC) $(CFLAGS) $(WARN) -Wno-missing-prototypes $(CPPFLAGS) $(PKG_CFLAGS) \
	    -o $@ $< $(LIB_OBJ) $(LDFLAGS) $(PKG_LIBS) $(CMOCKA_LIBS) -lm

# Fuzzing (tests/fuzz/README.md): libFuzzer targets built by clang with
# ASan+UBSan. Every library object is compiled again with the same flags
# into $(FUZZ_BUILD), with libc malloc. `make fuzz` runs each target for
# FUZZ_SECONDS from a scratch copy of its seed corpus and fails if one
# finds a crash, a leak or a timeout.
FUZZ_CC       ?= clang
FUZZ_SECONDS  ?= 60
FUZZ_BUILD    := $(BUILD)/fuzz
FUZZ_CFLAGS   := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
                 -fno-sanitize-recover=undefined
FUZZ_TARGETS  := fuzz_request fuzz_conf fuzz_http
FUZZ_BIN      := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/%)
FUZZ_LIB_OBJ  := $(LIB_OBJ:$(BUILD)/%=$(FUZZ_BUILD)/%)
FUZZ_PKG_CFLAGS = $(shell pkg-config --cflags libevent yaml-0.1 2>/dev/null)
FUZZ_PKG_LIBS   = $(shell pkg-config --libs libevent yaml-0.1 2>/dev/null)
FUZZ_FLAGS_FILE := $(FUZZ_BUILD)/.flags
FUZZ_FLAGS_NOW  := $(FUZZ_CC) $(FUZZ_CFLAGS) $(CPPFLAGS)

$(FUZZ_FLAGS_FILE): FORCE
	@mkdir -p $(FUZZ_BUILD)
	@echo '$(FUZZ_FLAGS_NOW)' | cmp -s - $@ || echo '$(FUZZ_FLAGS_NOW)' > $@

$(FUZZ_BUILD)/%.o: %.c $(FUZZ_FLAGS_FILE)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC    fuzz/$<")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) $(WARN) $(CPPFLAGS) $(FUZZ_PKG_CFLAGS) -MMD -MP -c -o $@ $<

$(FUZZ_BUILD)/llhttp/%.o: $(LLHTTP_SRC_DIR)/%.c $(FUZZ_FLAGS_FILE)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC    fuzz/llhttp/$(notdir $<)")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -w -I$(LLHTTP_INC_DIR) -c -o $@ $<

$(FUZZ_BIN): $(FUZZ_BUILD)/%: tests/fuzz/%.c $(FUZZ_LIB_OBJ) $(FUZZ_FLAGS_FILE)
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) $(WARN) $(CPPFLAGS) $(FUZZ_PKG_CFLAGS) \
	    -o $@ $< $(FUZZ_LIB_OBJ) $(FUZZ_PKG_LIBS) -lm

fuzz-build: $(FUZZ_BIN)

fuzz: deps
	$(MAKE) fuzz-build
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# $(call install_missing,PACKAGES): apt-get install those not installed yet
define install_missing
	@missing=""; for p in $(1); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" \
	        || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
endef

deps:
	$(call install_missing,$(DEB_PKGS))

bench-deps:
	$(call install_missing,$(BENCH_PKGS))

run: deps
	$(MAKE) all
	./packaging/demo.sh conf/corral.yaml

test: deps
	$(MAKE) all $(UNIT_BIN)
	$(MAKE) test-unit test-integration

test-unit: $(UNIT_BIN)
	@tests/unit/run.sh $(UNIT_BIN)

test-integration: all
	@CORRAL=$(abspath $(BUILD)/corral) CORRALCTL=$(abspath $(BUILD)/corralctl) \
	    tests/integration/run.sh

bench: deps bench-deps
	$(MAKE) all
	@CORRAL=$(abspath $(BUILD)/corral) CORRALCTL=$(abspath $(BUILD)/corralctl) \
	    QUICK=$(QUICK) bench/run.sh

MANDIR  ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/etc/corral \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(BASHCOMPDIR)
	install -m 0755 $(BUILD)/corral $(DESTDIR)$(PREFIX)/sbin/corral
	install -m 0755 $(BUILD)/corralctl $(DESTDIR)$(PREFIX)/bin/corralctl
	install -m 0644 packaging/corral.yaml $(DESTDIR)/etc/corral/corral.yaml
	install -m 0644 packaging/man/corral.8 packaging/man/corralctl.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 packaging/man/corral.yaml.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 packaging/corralctl.bash-completion $(DESTDIR)$(BASHCOMPDIR)/corralctl

# The Debian package: a copy of the sources with packaging/debian as
# debian/ (plus the unit and logrotate file under the names debhelper
# looks for), built by dpkg-buildpackage in a clean environment (our BUILD=
# and make flags must not reach the staged build); the .deb lands in $(BUILD)/.
DEB_VERSION := $(shell sed -n '1s/.*(\(.*\)).*/\1/p' packaging/debian/changelog)
DEB_STAGE   := $(BUILD)/deb/corral-$(DEB_VERSION)
DEB_SOURCES := Makefile LICENSE README.md conf gateway shm ctl packaging

deb:
	rm -rf $(BUILD)/deb
	mkdir -p $(DEB_STAGE)
	cp -r $(DEB_SOURCES) $(DEB_STAGE)/
	cp -r packaging/debian $(DEB_STAGE)/debian
	cp packaging/corral.service $(DEB_STAGE)/debian/corral.service
	cp packaging/corral.logrotate $(DEB_STAGE)/debian/corral.logrotate
	cd $(DEB_STAGE) && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u BUILD \
	    dpkg-buildpackage -us -uc -b
	mv $(BUILD)/deb/corral_$(DEB_VERSION)_*.deb $(BUILD)/
	@ls $(BUILD)/corral_$(DEB_VERSION)_*.deb

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -path $(BUILD)/deb -prune -o -type f -name '*.d' -print 2>/dev/null)
