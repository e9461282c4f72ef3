# Makefile — shortcuts over scripts/bootstrap.sh (which picks the interpreter, installs what
# is missing and builds shardopt._C in place).  `make ARGS="-k matmul" test` passes ARGS to
# pytest.
SHELL := /bin/bash
BOOT := source scripts/bootstrap.sh || exit 1;

.PHONY: build test debug asan clean bench

build:
	@$(BOOT) true

test:
	@./run_tests.sh $(ARGS)

# -O0 -g build in place; the next plain build (or ./run_tests.sh) relinks the release one,
# so to test the debug build run `SHARDOPT_DEBUG=1 ./run_tests.sh`.
debug:
	@export SHARDOPT_DEBUG=1; $(BOOT) true

# Whole suite under AddressSanitizer; restores the normal build afterwards (scripts/asan.sh).
asan:
	@scripts/asan.sh $(ARGS)

clean:
	rm -rf build dist *.egg-info
	find shardopt -name '_C*.so' -delete
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

bench:
	@$(BOOT) shopt -s nullglob; files=(benchmarks/*.py); \
	if [ $${#files[@]} -eq 0 ]; then echo "no benchmarks/*.py yet"; exit 0; fi; \
	for f in "$${files[@]}"; do echo "== $$f"; "$$PY" "$$f" || exit 1; done
